"""Four real Chromium participants on an impaired loopback, measured from getStats().

    python -m bench.network          (re-runs itself inside its own network namespace)

One room, four people (A, B, C, D), fake camera and a fake microphone that talks
(bench/speech.py; KREIS_BENCH_AUDIO=beep for Chromium's beep). The cameras send three
VP8 temporal layers where the browser can (sfu/layers.py). The conditions follow
each other in one run, each measured over a window after a settling time:

    clean      nothing impaired (the baseline every ratio refers to)
    loss10     10 % random loss on every packet from the SFU to the browsers
    jitter     40 ± 10 ms delay on every UDP packet on loopback (so: reordering), no loss
    capped     D's downlink (the SFU → D connection) capped at 40 % of what D received in
               the clean window (250 to 500 kbit/s): two shared cores encode only about
               200 kbit/s per camera, so a fixed 500 kbit/s cap often capped nothing.
               Not below 250: three talking microphones (Opus with in-band FEC) are
               about 3 × 29 kbit/s of payload (measured) and 3 × 25 of IP/UDP/SRTP
               headers at 50 packets a second; a cap under that would leave no room
               for the voices themselves, whatever the SFU did with the video
    clean2     the cap lifted: every stream must be back to its clean frame rate

Per window: the lowest frame rate any receiver decodes, the share of concealed audio
samples, what the publishers send (and how much of it is retransmission). The last
line is the one to compare between builds:

    RESULT others_fps_ratio=… capped_concealed_pct=… jitter_retx_pct=…
           loss10_concealed_pct=… recovered=yes|no     (one line)

others_fps_ratio: the lowest of A, B and C's mean received frame rate while D is capped
(KREIS_BENCH_PEOPLE=3: A and B, with C capped),
divided by the same in the clean window. capped_concealed_pct: D's concealed audio while
capped. recovered: D decodes every video again within 10 s of the cap lifting, and in
the last window every stream runs at ≥ 85 % of its clean frame rate.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import impair, own_namespace
from bench import server as bench_server
from bench.measure import CLK_TCK, cpu_seconds, runqueue_wait_seconds
from bench.speech import speech_wav
from tests.kreis_server import wait_healthy
from tests.page_checks import devices_on

PEOPLE = int(os.environ.get("KREIS_BENCH_PEOPLE", "4"))
"""Participants (3 or 4); the last one's downlink is capped."""
NAMES = ["A", "B", "C", "D"][:PEOPLE]
CAPPED = NAMES[-1]
WINDOW = float(os.environ.get("KREIS_BENCH_WINDOW", "20"))
SETTLE = 6.0
CAP_SHARE = 0.4
CAP_KBIT = (250, 500)
"""D's cap: CAP_SHARE of what D received in the clean window, within these bounds."""
AUDIO = os.environ.get("KREIS_BENCH_AUDIO", "speech")
"""What the fake microphones send: "speech" (bench/speech.py) or "beep" (Chromium's
own: a short beep twice a second, digital silence between, which Opus cannot protect
with in-band FEC)."""
CAP_BUFFER = 25_000
RESUME_LIMIT = 10.0


@dataclass
class Window:
    name: str
    fps: dict[tuple[str, str], float]
    """(receiver, sender) → decoded frames per second."""
    width: dict[tuple[str, str], int]
    concealed: dict[str, float]
    """receiver → % of audio samples concealed."""
    sent_kbit: float
    """All publishers together, audio + video, kbit/s."""
    received_kbit: dict[str, float]
    """receiver → everything it received from the others (camera and mic), kbit/s."""
    audio_kbit: dict[str, float]
    """receiver → the part of it that is the others' microphones, kbit/s (RTP payload)."""
    retx_kbit: float


async def snapshot(pages: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, page in pages.items():
        out[name] = await page.evaluate("window.kreis.stats()")
    out["_t"] = time.monotonic()
    return out


def diff(name: str, a: dict[str, Any], b: dict[str, Any], ids: dict[str, str]) -> Window:
    who = {v: k for k, v in ids.items()}
    dt = b["_t"] - a["_t"]
    fps: dict[tuple[str, str], float] = {}
    width: dict[tuple[str, str], int] = {}
    concealed: dict[str, float] = {}
    received: dict[str, float] = {}
    audio: dict[str, float] = {}
    sent = retx = 0.0
    for r in NAMES:
        before = {(s["participant"], s["kind"]): s for s in a[r]["inbound"]}
        samples = hidden = 0
        received[r] = audio[r] = 0.0
        for s in b[r]["inbound"]:
            if s["source"] not in ("camera", "mic"):
                continue
            old = before.get((s["participant"], s["kind"]))
            if old is None:
                continue
            kbit = (s["bytesReceived"] - old["bytesReceived"]) * 8 / 1000 / dt
            received[r] += kbit
            sender = who.get(s["participant"], "?")
            if s["kind"] == "video":
                fps[(r, sender)] = (s["framesDecoded"] - old["framesDecoded"]) / dt
                width[(r, sender)] = s["frameWidth"]
            else:
                audio[r] += kbit
                samples += s["totalSamplesReceived"] - old["totalSamplesReceived"]
                hidden += s["concealedSamples"] - old["concealedSamples"]
        concealed[r] = 100.0 * hidden / samples if samples else 100.0
        out_before = {o["source"]: o for o in a[r]["outbound"]}
        for o in b[r]["outbound"]:
            old = out_before.get(o["source"])
            if old is not None:
                sent += (o["bytesSent"] - old["bytesSent"]) * 8 / 1000 / dt
                retx += (
                    (o["retransmittedBytesSent"] - old["retransmittedBytesSent"]) * 8 / 1000 / dt
                )
    return Window(name, fps, width, concealed, sent, received, audio, retx)


def sfu_events(log_dir: Path) -> dict[str, int]:
    """How often the SFU's log says it paused or resumed video to a subscriber, or gave
    it fewer or more temporal layers."""
    text = "".join(p.read_text(errors="replace") for p in log_dir.glob("**/*") if p.is_file())
    return {
        "paused": text.count("video paused"),
        "resumed": text.count("video resumed"),
        "fewer layers": text.count("a little over: temporal layers"),
        "all layers again": text.count("all temporal layers again"),
    }


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy so far (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait


def cpu_now(server_pid: int) -> tuple[float, float, float]:
    """(server CPU s, server's runqueue wait s, machine busy s) so far."""
    return cpu_seconds(server_pid), runqueue_wait_seconds(server_pid), machine_busy_seconds()


async def measure(
    name: str,
    pages: dict[str, Any],
    ids: dict[str, str],
    log_dir: Path | None = None,
    server_pid: int | None = None,
) -> Window:
    """One window. With `server_pid`, also prints the CPU the server used (and waited
    for) and how busy the whole machine was: a window slower than the clean one on a
    saturated machine says little about the network."""
    before = sfu_events(log_dir) if log_dir else {}
    await asyncio.sleep(SETTLE)
    a = await snapshot(pages)
    cpu_a = cpu_now(server_pid) if server_pid else None
    await asyncio.sleep(WINDOW)
    b = await snapshot(pages)
    if log_dir:
        after = sfu_events(log_dir)
        print(f"  {name}: SFU " + ", ".join(f"{k} {after[k] - before[k]}" for k in after))
    if server_pid and cpu_a:
        dt = b["_t"] - a["_t"]
        server, waited, busy = (y - x for x, y in zip(cpu_a, cpu_now(server_pid), strict=True))
        print(
            f"  {name}: server {server / dt:.2f} cores (waited {waited / dt:.2f} s/s),"
            f" machine {busy / dt:.2f} of {os.cpu_count()} cores busy"
        )
    w = diff(name, a, b, ids)
    slow = [f"{r}<-{p} {v:.1f}" for (r, p), v in sorted(w.fps.items()) if v < 5]
    print(f"  measured {name}" + (f"; under 5 fps: {', '.join(slow)}" if slow else ""), flush=True)
    return w


async def open_room(page: Any, slug: str, name: str) -> None:
    await page.goto(f"/{slug}", wait_until="domcontentloaded")
    await page.locator("#name").wait_for()
    # Camera and microphone start off in the pre-join (builds before it had them on).
    if await page.locator("#toggle-camera").count():
        await devices_on(page)
    await page.fill("#name", name)
    await page.check("#rules")
    await page.click("#join")


async def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise RuntimeError(f"timed out: {what}")


async def all_videos(page: Any, others: int) -> bool:
    snap = await page.evaluate("window.kreis.stats()")
    video = [s for s in snap["inbound"] if s["kind"] == "video" and s["framesDecoded"] > 0]
    return len(video) >= others


async def down_port(page: Any) -> int:
    snap = await page.evaluate("window.kreis.stats()")
    ports = {s["localPort"] for s in snap["inbound"] if s.get("localPort")}
    if len(ports) != 1:
        raise RuntimeError(f"cannot tell the down connection's port: {ports}")
    return int(ports.pop())


async def resume_time(page: Any, lifted: float, limit: float) -> float | None:
    """Seconds from lifting the cap until every video to page decodes again."""
    prev: dict[str, int] = {}
    while time.monotonic() - lifted < limit + 5:
        snap = await page.evaluate("window.kreis.stats()")
        now = {
            s["participant"]: s["framesDecoded"] for s in snap["inbound"] if s["kind"] == "video"
        }
        moving = [p for p, n in now.items() if p in prev and n >= prev[p] + 3]
        if prev and len(moving) == len(now) == PEOPLE - 1:
            return time.monotonic() - lifted
        prev = now
        await asyncio.sleep(0.5)
    return None


def table(windows: list[Window]) -> None:
    print()
    print(
        "| condition | video fps (min) | width (min) | audio concealed (max) "
        "| publishers' rate kbit/s (retx) |"
    )
    print("|---|---|---|---|---|")
    for w in windows:
        fps = min(w.fps.values()) if w.fps else 0.0
        width = min(w.width.values()) if w.width else 0
        concealed = max(w.concealed.values()) if w.concealed else 100.0
        print(
            f"| {w.name} | {fps:.1f} | {width} | {concealed:.1f} % | "
            f"{w.sent_kbit:,.0f} ({w.retx_kbit:,.0f}) |"
        )
        if w.name == "capped":
            d = [v for (r, _), v in w.fps.items() if r == CAPPED]
            others = [v for (r, _), v in w.fps.items() if r != CAPPED]
            print(
                f"|  ↳ capped D / others | {min(d, default=0):.1f} / "
                f"{min(others, default=0):.1f} | "
                f"| D {w.concealed[CAPPED]:.1f} % / others "
                f"{max(v for k, v in w.concealed.items() if k != CAPPED):.1f} % | |"
            )


def mean_fps(w: Window, receiver: str) -> float:
    values = [v for (r, _), v in w.fps.items() if r == receiver]
    return sum(values) / len(values) if values else 0.0


async def run() -> None:
    from playwright.async_api import async_playwright

    from tests.chromium_flags import CHROMIUM, CHROMIUM_ARGS

    # A loaded machine can take longer than wait_healthy's 30 s to start the server.
    bench_server.wait_healthy = functools.partial(wait_healthy, timeout=240)  # type: ignore[attr-defined]
    # The SFU worker's decisions (pauses, layers) are counted from its log lines.
    srv = bench_server.start(env={"KREIS_SFU_WORKER_LOG": "INFO"})
    delayer: subprocess.Popen[bytes] | None = None
    try:
        slug = "netzprobe"
        leader = await bench_server.leader(srv.url, [slug])
        async with async_playwright() as pw:
            args = list(CHROMIUM_ARGS)
            if AUDIO == "speech":
                wav = speech_wav(Path(srv.tmp.name))
                args.append(f"--use-file-for-fake-audio-capture={wav}")
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
            pages: dict[str, Any] = {}
            for name in NAMES:
                context = await browser.new_context(base_url=srv.url, locale="en-US")
                await context.grant_permissions(["camera", "microphone"])
                context.set_default_timeout(240_000)
                pages[name] = await context.new_page()
                await open_room(pages[name], slug, name)
            for name, page in pages.items():
                await wait_for(lambda p=page: all_videos(p, PEOPLE - 1), 420, f"{name} sees all")
            ids = {n: (await p.evaluate("window.kreis.me"))["id"] for n, p in pages.items()}
            modes = {
                o.get("scalabilityMode") or "one layer"
                for p in pages.values()
                for o in (await p.evaluate("window.kreis.stats()"))["outbound"]
                if o["source"] == "camera"
            }
            print(f"{PEOPLE} people in the room; cameras sent as {', '.join(sorted(modes))}")
            logs = Path(srv.tmp.name)
            windows = [await measure("clean", pages, ids, logs, srv.pid)]

            rule = impair.loss(0.10, bench_server.SERVER_PORTS)
            windows.append(await measure("loss10", pages, ids, logs, srv.pid))
            impair.remove(rule)

            delayer = subprocess.Popen(
                [sys.executable, "-m", "bench.impair", "delay", "7", "40", "10"],
                stdout=subprocess.DEVNULL,
            )
            await asyncio.sleep(1)
            rule = impair.queue_udp(7)
            windows.append(await measure("jitter", pages, ids, logs, srv.pid))
            impair.remove(rule)
            delayer.terminate()
            delayer.wait(timeout=5)
            delayer = None

            got = windows[0].received_kbit[CAPPED]
            cap = int(min(CAP_KBIT[1], max(CAP_KBIT[0], CAP_SHARE * got)))
            voices = windows[0].audio_kbit[CAPPED]
            print(
                f"  {CAPPED} received {got:.0f} kbit/s clean ({voices:.0f} of it voices,"
                f" RTP payload); capped at {cap} kbit/s"
            )
            impair.cap_port(await down_port(pages[CAPPED]), cap, CAP_BUFFER)
            windows.append(await measure("capped", pages, ids, logs, srv.pid))
            impair.uncap()
            resumed = await resume_time(pages[CAPPED], time.monotonic(), RESUME_LIMIT)
            shown = "never" if resumed is None else f"{resumed:.1f} s"
            print(f"  video to {CAPPED} resumed after {shown}")
            windows.append(await measure("clean2", pages, ids, logs, srv.pid))
            await browser.close()
        await leader.close()
        if os.environ.get("KREIS_BENCH_VERBOSE"):
            for path in (Path(srv.tmp.name) / "logs").glob("*.log"):
                for line in path.read_text().splitlines():
                    if "down link" in line or "probe" in line:
                        print("   ", line[:160])
    finally:
        if delayer is not None:
            delayer.terminate()
        srv.stop()

    table(windows)
    clean, loss10, jitter, capped, final = windows
    ratios = [mean_fps(capped, r) / max(0.1, mean_fps(clean, r)) for r in NAMES[:-1]]
    widths = [
        capped.width[k] / max(1, clean.width[k])
        for k in capped.width
        if k[0] != CAPPED and k in clean.width
    ]
    recovered = resumed is not None and resumed <= RESUME_LIMIT
    for key, value in clean.fps.items():
        if final.fps.get(key, 0.0) < 0.85 * value:
            print(
                f"  not recovered: {key[0]}<-{key[1]}"
                f" {final.fps.get(key, 0.0):.1f} of {value:.1f} fps"
            )
            recovered = False
    loss_concealed = sum(loss10.concealed.values()) / len(loss10.concealed)
    retx_pct = 100.0 * jitter.retx_kbit / max(1.0, jitter.sent_kbit)
    print(f"others' width ratio while {CAPPED} is capped: {min(widths, default=0):.2f}")
    print(
        f"RESULT others_fps_ratio={min(ratios):.2f}"
        f" capped_concealed_pct={capped.concealed[CAPPED]:.1f}"
        f" jitter_retx_pct={retx_pct:.1f} loss10_concealed_pct={loss_concealed:.1f}"
        f" recovered={'yes' if recovered else 'no'}"
    )


def main() -> None:
    own_namespace("bench.network")  # iptables and tc touch nothing but this benchmark
    asyncio.run(run())


if __name__ == "__main__":
    main()
