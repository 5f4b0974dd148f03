"""Firefox and Chromium in one Kreis room, through the real server and SFU.

Debian's Firefox ESR (over WebDriver BiDi, tests/firefox/bidi.py) and Debian's Chromium
(over Playwright) knock, the leader (over the protocol, like the console) admits both,
and each must decode the other's video and hear the other's audio. With E2EE switched
on live, both must keep decoding through their frame transforms, show the same safety
words, and the SFU must forward only ciphertext from the Firefox sender.

Media is read from getStats() through the client's debugging hook (window.kreis), the
E2EE engine's counters from window.kreisE2ee: measured, never assumed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bidi import Firefox, Tab, launch_firefox
from chromium_flags import CHROMIUM, CHROMIUM_ARGS
from page_checks import (
    Evaluating,
    audio_peak,
    devices_on,
    keeps_flowing,
    media,
    start_room,
    wait_for,
)
from playwright.async_api import Page, async_playwright
from vp8_tap import HOOKS, MAGIC, arm_tap, decode, frames_of, is_keyframe, tapped

from app.client import KreisClient

pytestmark = [
    pytest.mark.firefox,
    pytest.mark.browser,
]


# --- the two browsers -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def chromium_page(base_url: str, errors: list[str]) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await chromium.new_context(base_url=base_url, locale="en-US")
            await context.grant_permissions(["camera", "microphone"])
            page = await context.new_page()
            page.on("pageerror", lambda err: errors.append(f"chromium: {err}"))
            yield page
        finally:
            await chromium.close()


async def chromium_knocks(page: Page, slug: str, name: str, fragment: str = "") -> None:
    await page.goto(f"/{slug}{fragment}")
    await devices_on(page)  # camera and microphone start off
    await page.fill("#name", name)
    await page.check("#rules")
    await page.click("#join")


FILL_AND_JOIN = """(async (name) => {
  // camera and microphone start off: switch both on and wait until they are
  for (const id of ["toggle-camera", "toggle-mic"]) {
    const toggle = document.getElementById(id);
    toggle.click();
    for (let i = 0; i < 200 && toggle.getAttribute("aria-pressed") !== "true"; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const input = document.getElementById("name");
  input.value = name;
  input.dispatchEvent(new Event("input", { bubbles: true }));
  document.getElementById("rules").checked = true;
  document.getElementById("join").click();
  return true;
})(%s)"""


async def firefox_knocks(tab: Tab, url: str, slug: str, name: str, fragment: str = "") -> None:
    """The same pre-join steps as in Chromium, done in the page (BiDi has no `fill`)."""
    await tab.goto(f"{url}/{slug}{fragment}")

    async def ready() -> bool:
        return bool(await tab.evaluate("typeof window.kreis === 'object'"))

    await wait_for(ready, 10, "the client's hook in Firefox")
    await tab.evaluate(FILL_AND_JOIN % f'"{name}"')


def firefox_errors(firefox: Firefox) -> list[str]:
    """Uncaught errors and console errors the Firefox pages logged (log.entryAdded)."""
    return [
        f"firefox: {e['params'].get('text')}"
        for e in firefox.events
        if e.get("method") == "log.entryAdded" and e["params"].get("level") == "error"
    ]


# --- the room -----------------------------------------------------------------------------


async def admit_knocks(leader: KreisClient, slug: str, count: int, timeout: float = 20) -> None:
    """Admits entrants from the lobby as they knock until `count` were admitted."""
    admitted: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(admitted) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"only {len(admitted)} of {count} knocked")
        queue = await leader.expect("lobby_queue", timeout=left)
        for entrant in queue["entrants"]:
            if entrant["id"] not in admitted:
                admitted.add(entrant["id"])
                await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})


async def in_room(page: Evaluating) -> bool:
    return bool(await page.evaluate("window.kreis && window.kreis.state === 'room'"))


async def my_id(page: Evaluating) -> str:
    return str((await page.evaluate("window.kreis.me"))["id"])


# --- what arrives -------------------------------------------------------------------------


async def hears_and_sees(page: Evaluating, other: str) -> bool:
    m = (await media(page)).get(other, {})
    return m.get("frames", 0) > 0 and m.get("energy", 0) > 0


async def rising(page: Evaluating, other: str, seconds: float = 2.0) -> dict[str, float]:
    """Asserts that video frames and audio energy from `other` keep rising."""
    return dict((await keeps_flowing(page, {other}, seconds))[other])


async def e2ee(page: Evaluating) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.kreisE2ee.stats()")
    return result


async def both_in_room(
    server: Any, slug: str, leader: KreisClient, fox: Tab, chrome: Page, fragment: str = ""
) -> tuple[str, str]:
    await firefox_knocks(fox, server.url, slug, "Fuchs", fragment)
    await chromium_knocks(chrome, slug, "Falke", fragment)
    await admit_knocks(leader, slug, 2)
    pages: tuple[Evaluating, ...] = (fox, chrome)
    for page in pages:
        await wait_for(functools.partial(in_room, page), 20, "admitted into the room")
    return await my_id(fox), await my_id(chrome)


async def exchanging(fox: Tab, chrome: Page, fox_id: str, chrome_id: str) -> None:
    """Both decode the other's video and hear the other's audio, and it keeps coming."""
    await wait_for(
        lambda: hears_and_sees(fox, chrome_id),
        30,
        "Firefox decodes Chromium",
        show=lambda: fox.evaluate("window.kreis.stats()"),
    )
    await wait_for(
        lambda: hears_and_sees(chrome, fox_id),
        30,
        "Chromium decodes Firefox",
        show=lambda: chrome.evaluate("window.kreis.stats()"),
    )
    await rising(fox, chrome_id)
    await rising(chrome, fox_id)
    await same_tone(fox, chrome)
    await same_tone(chrome, fox)


async def same_tone(sender: Evaluating, receiver: Evaluating) -> None:
    """The receiver plays the sender's microphone tone: same peak frequency (FFT).

    Energy alone would pass for noise or the wrong stream; the fake microphones of both
    browsers make a steady tone, measured at the source and at the listener.
    """
    sent = await audio_peak(sender, "mic")
    heard = await audio_peak(receiver, "remote")
    assert sent["total"] > 0 and sent["share"] > 0.5, sent
    assert heard.get("total", 0) > 0, heard
    assert abs(heard["peakHz"] - sent["peakHz"]) <= 50, (sent, heard)
    assert heard["share"] > 0.5, (sent, heard)


# --- the tests ----------------------------------------------------------------------------


async def test_firefox_and_chromium_see_and_hear_each_other(kreis_server: Any) -> None:
    slug = "fuchs-und-falke"
    leader = await start_room(kreis_server, slug, lobby=True)
    errors: list[str] = []
    try:
        async with (
            launch_firefox() as firefox,
            chromium_page(kreis_server.url, errors) as chrome,
        ):
            await firefox.command("session.subscribe", {"events": ["log.entryAdded"]})
            fox = await firefox.new_tab()
            fox_id, chrome_id = await both_in_room(kreis_server, slug, leader, fox, chrome)
            await exchanging(fox, chrome, fox_id, chrome_id)
            sent = (await fox.evaluate("window.kreis.stats()"))["outbound"]
            assert {o["kind"] for o in sent if o["packetsSent"] > 0} == {"audio", "video"}, sent
            errors += firefox_errors(firefox)
    finally:
        await leader.close()
    assert not errors, errors


async def test_e2ee_between_firefox_and_chromium(server_factory: Any) -> None:
    server = server_factory("tap", **HOOKS)
    slug = "verschluesselt-fuchs-und-falke"
    leader = await start_room(server, slug, lobby=True)
    errors: list[str] = []
    try:
        async with launch_firefox() as firefox, chromium_page(server.url, errors) as chrome:
            await firefox.command("session.subscribe", {"events": ["log.entryAdded"]})
            fox = await firefox.new_tab()
            # Both open the full link: the room secret authenticates them to each other.
            fox_id, chrome_id = await both_in_room(
                server,
                slug,
                leader,
                fox,
                chrome,
                "#s=" + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
            )
            pairs: list[tuple[Evaluating, str]] = [(fox, chrome_id), (chrome, fox_id)]
            for page, _ in pairs:
                assert (await e2ee(page))["state"] == "off"
            await exchanging(fox, chrome, fox_id, chrome_id)

            # The leader switches E2EE on live: no rejoin, no renegotiation.
            await leader.send({"type": "set_e2ee", "room": slug, "on": True})

            async def decrypting(page: Evaluating, other: str) -> bool:
                s = await e2ee(page)
                peer = s.get("perParticipant", {}).get(other, {})
                return bool(s["state"] == "on" and peer.get("decrypted", 0) > 0)

            for page, other in pairs:
                await wait_for(
                    functools.partial(decrypting, page, other),
                    20,
                    "decrypted frames",
                    show=functools.partial(e2ee, page),
                )
            await asyncio.sleep(1.5)  # the switch delay: the last clear frames are gone
            clear_before = [(await e2ee(page))["passedClear"] for page, _ in pairs]
            for page, other in pairs:
                await rising(page, other)
            for (page, other), clear in zip(pairs, clear_before, strict=True):
                s = await e2ee(page)
                assert s["passedClear"] == clear, s  # nothing more arrived in clear
                assert s["encrypted"] > 0 and s["decrypted"] > 0, s
                assert s["perParticipant"][other]["lastFrame"] == "encrypted", s

            # The room shows encrypted on both, verified, with the same safety number.
            async def one_number() -> Any:
                sas = [await page.evaluate("window.kreisE2ee.sas") for page, _ in pairs]
                return sas if sas[0] is not None and sas[0] == sas[1] else None

            sas = await wait_for(one_number, 20, "one safety number in both browsers")
            for page, other in pairs:
                trust = await page.evaluate("window.kreisE2ee.trust")
                assert {m["id"]: m["verified"] for m in trust["members"]}[other] is True, trust
            for page, _ in pairs:
                status = await page.evaluate(
                    "(e => ({state: e.dataset.state, hidden: e.hidden, text: e.textContent}))"
                    "(document.getElementById('e2ee-status'))"
                )
                assert status["state"] == "on" and not status["hidden"], status
                assert "End-to-end encrypted" in status["text"], status
                assert sas[0]["digits"] in status["text"], status

            # What the SFU forwards from each sender is the engine's format, not VP8.
            await arm_tap(server)
            for sender in (fox_id, chrome_id):
                frames = frames_of(await tapped(server, sender))
                assert len(frames) >= 2, (sender, len(frames))
                for frame, last_packet in frames:
                    assert frame.endswith(MAGIC), (sender, frame[-16:].hex())
                    assert last_packet.endswith(MAGIC), (sender, last_packet[-16:].hex())
                assert any(is_keyframe(f) for f, _ in frames), sender
                pictures, errs = decode([f for f, _ in frames])
                assert pictures == 0, (sender, pictures, errs, len(frames))
            errors += firefox_errors(firefox)
    finally:
        await leader.close()
    assert not errors, errors
