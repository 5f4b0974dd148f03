"""Polling and media checks shared by every browser test (Chromium and Firefox).

`wait_for` polls a coroutine until it returns something truthy. `media` reads the
web client's own stats hook (`window.kreis.stats()`) of a page: a Playwright page or
a Firefox tab driven over WebDriver BiDi, anything with an async `evaluate`.
`start_room` is the leader every browser test needs: a protocol client, like the
console, that logs in and starts a room.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from app.client import KreisClient


class Evaluating(Protocol):
    """A Playwright page or a Firefox tab: both evaluate an expression, promises awaited."""

    async def evaluate(self, expression: str) -> Any: ...


async def wait_for(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 20,
    what: str = "condition",
    show: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    shown = f"; {await show()!r}" if show else ""
    raise AssertionError(f"timed out waiting for {what} (last: {last!r}{shown})")


async def media(page: Evaluating) -> dict[str, dict[str, float]]:
    """Per publisher: frames decoded (camera) and audio energy (mic)."""
    snap = await page.evaluate("window.kreis.stats()")
    out: dict[str, dict[str, float]] = {}
    for s in snap["inbound"]:
        entry = out.setdefault(s["participant"], {"frames": 0, "energy": 0.0})
        if s["kind"] == "video" and s["source"] == "camera":
            entry["frames"] = s["framesDecoded"]
        if s["kind"] == "audio" and s["source"] == "mic":
            entry["energy"] = s["totalAudioEnergy"]
    return out


async def start_room(server: Any, slug: str, lobby: bool = False) -> KreisClient:
    """A leader over the protocol (like the console) that starts a room."""
    leader = KreisClient(server.url, kind="console")
    await leader.connect()
    await leader.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )
    await leader.request(
        {"type": "create_room", "slug": slug, "lobby": lobby, "password": None, "dial_in": False},
        "room_created",
    )
    return leader


AUDIO_PEAK_JS = """(async () => {
  const SOURCE = %(source)s, MS = %(ms)d;
  let stream = null;
  if (SOURCE === "mic") {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } else {
    const playing = [...document.querySelectorAll("audio")].filter(
      (a) => a.srcObject && a.srcObject.getAudioTracks().length);
    if (playing.length !== 1) return { error: "audio elements: " + playing.length };
    stream = playing[0].srcObject;
  }
  const ctx = new AudioContext();
  await ctx.resume();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const power = new Float64Array(analyser.frequencyBinCount);
  const end = performance.now() + MS;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, 40));
    analyser.getFloatFrequencyData(bins);
    for (let i = 1; i < bins.length; i++) if (isFinite(bins[i])) power[i] += 10 ** (bins[i] / 10);
  }
  if (SOURCE === "mic") stream.getTracks().forEach((t) => t.stop());
  const hz = ctx.sampleRate / analyser.fftSize;
  await ctx.close();
  let peak = 1, total = 0;
  for (let i = 1; i < power.length; i++) {
    total += power[i];
    if (power[i] > power[peak]) peak = i;
  }
  let near = 0;
  for (let i = 1; i < power.length; i++) if (Math.abs(i - peak) * hz <= 50) near += power[i];
  return { peakHz: peak * hz, share: total > 0 ? near / total : 0, total };
})()"""


async def audio_peak(page: Evaluating, source: str = "remote", seconds: float = 1.5) -> Any:
    """Peak frequency of audio in the page, measured by a Web Audio analyser (FFT).

    `source` "remote": the one `<audio>` element playing another participant;
    "mic": a fresh capture of the page's own (fake) microphone, i.e. what it sends.
    Returns `{peakHz, share, total}`: `share` is the part of the energy within ±50 Hz
    of the peak.
    """
    script = AUDIO_PEAK_JS % {"source": json.dumps(source), "ms": int(seconds * 1000)}
    return await page.evaluate(script)


async def devices_on(page: Any) -> None:
    """Switches camera and microphone on in the pre-join (both start off)."""
    for kind in ("camera", "mic"):
        toggle = page.locator(f"#toggle-{kind}")
        await toggle.click()
        await page.locator(f'#toggle-{kind}[aria-pressed="true"]').wait_for(timeout=10000)


TRACK_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__kreisTestPcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__kreisTestPcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""
"""An init script: the page's peer connections, kept in `window.__kreisTestPcs`."""


async def keeps_flowing(
    page: Any, others: set[str], seconds: float = 2.0, energy: bool = True, windows: int = 3
) -> dict[str, Any]:
    """Asserts that video frames (and audio energy) from every one of `others` rise.

    Each of up to `windows` windows of `seconds` may show it: on a loaded CI machine a
    stream can stand still for one short window (a decoder waiting for a keyframe after a
    key switch) and move on, which is not a failure; standing still throughout is.
    Returns the last media snapshot.
    """
    before = await media(page)
    after = before
    for _ in range(windows):
        await asyncio.sleep(seconds)
        after = await media(page)
        if all(
            after[pid]["frames"] > before[pid]["frames"]
            and (not energy or after[pid]["energy"] > before[pid]["energy"])
            for pid in others
        ):
            return dict(after)
        before = after
    raise AssertionError(f"media from {sorted(others)} stood still: {before} -> {after}")
