"""One weak connection must not spoil the meeting (issue 15), in real Chromium.

The fake microphones talk (bench/speech.py: Chromium's own beep is mostly digital
silence, which Opus cannot protect with in-band FEC). Each test measures from the
pages' getStats(); nothing is assumed. Impairments stay in the test's own network
namespace (`tc`, `iptables`, root there as every test here runs).

- A capped downlink: Cleo's (the SFU → Cleo connection, found by its local port) is
  capped with `tc htb` at 40 % of what she received (500 kbit/s at most, 150 at least).
  The publishers keep their rate (Ada's video at least 60 % of before: the SFU used to
  pass the lowest receiver's estimate to every publisher); Bea keeps decoding; Cleo's
  video is paused, she hears both others with at most 5 % concealed audio, her page
  says so in plain words; after the cap, video reaches her again within 15 s.
- 10 % random loss on everything Bea receives: at most 5 % of her audio is concealed
  (the SFU reports her loss to Ada's encoder, which then adds in-band FEC).
- Fewer frames: Cleo asks for the others' cameras with fewer frames (More menu); she
  then decodes about a quarter of the frames Bea decodes of the same camera (its lowest
  VP8 temporal layer, sfu/layers.py), and all of them again when she switches back;
  with E2EE on as well (the layers are read outside the encrypted frames).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from chromium_flags import CHROMIUM_ARGS, launched
from meeting_pages import inbound, open_room, start_room, stats, wait_for, wait_state
from playwright.async_api import Browser

from bench import impair
from bench.speech import speech_wav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
]

CAP_KBIT = 500
WINDOW = 8.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    """This module's Chromium: its fake microphones talk instead of beeping."""
    wav = speech_wav(tmp_path_factory.mktemp("speech"))
    async with launched([*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"]) as b:
        yield b


def video_sent(snap: dict[str, Any]) -> int:
    return sum(o["bytesSent"] for o in snap["outbound"] if o["source"] == "camera")


def received(snap: dict[str, Any]) -> int:
    return sum(s["bytesReceived"] for s in snap["inbound"])


def frames(snap: dict[str, Any], pid: str) -> int:
    videos = inbound(snap, "video", "camera")
    return sum(s["framesDecoded"] for s in videos if s["participant"] == pid)


def concealment(a: dict[str, Any], b: dict[str, Any]) -> float:
    before = {s["participant"]: s for s in inbound(a, "audio", "mic")}
    samples = hidden = 0
    for s in inbound(b, "audio", "mic"):
        old = before.get(s["participant"])
        if old is not None:
            samples += s["totalSamplesReceived"] - old["totalSamplesReceived"]
            hidden += s["concealedSamples"] - old["concealedSamples"]
    assert samples > 0, "no audio arrived at all"
    return hidden / samples


async def videos_moving(page: Any, pids: list[str], step: float = 1.5) -> bool:
    a = await stats(page)
    await asyncio.sleep(step)
    b = await stats(page)
    return all(frames(b, pid) > frames(a, pid) + 3 for pid in pids)


@pytest.mark.skipif(shutil.which("tc") is None, reason="needs tc (iproute2)")
async def test_a_capped_downlink_pauses_only_its_own_video(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "ein-schwacher-anschluss"
    leaders.append(await start_room(shared_server, slug))
    ada, bea, cleo = [await people.page() for _ in range(3)]
    for page in (ada, bea, cleo):
        page.set_default_timeout(90_000)  # three video calls on two shared cores
    for page, name in ((ada, "Ada"), (bea, "Bea"), (cleo, "Cleo")):
        await open_room(page, slug, name)  # camera and microphone switched on first
    for page in (ada, bea, cleo):
        await wait_state(page, "room")
    ids = [(await p.evaluate("window.kreis.me"))["id"] for p in (ada, bea, cleo)]
    ada_id, bea_id, _ = ids
    for page, others in ((bea, [ada_id]), (cleo, [ada_id, bea_id])):
        await wait_for(lambda p=page, o=others: videos_moving(p, o), 60, "video flows")

    await asyncio.sleep(6)  # the publishers' estimates ramp up
    a0, c0 = await stats(ada), await stats(cleo)
    await asyncio.sleep(WINDOW)
    a1, c1 = await stats(ada), await stats(cleo)
    clean_rate = (video_sent(a1) - video_sent(a0)) / WINDOW
    # The cap is below what Cleo received: 500 kbit/s, or less where loaded CPUs encode
    # less than that (two shared cores, three Chromiums: often about 400 kbit/s in all).
    # Two voices (about 80 kbit/s) always fit.
    cleo_kbit = (received(c1) - received(c0)) * 8 / 1000 / WINDOW
    cap = int(max(150, min(CAP_KBIT, 0.4 * cleo_kbit)))
    print(f"Cleo received {cleo_kbit:.0f} kbit/s; capped at {cap} kbit/s")

    ports = {s["localPort"] for s in (await stats(cleo))["inbound"] if s["localPort"]}
    assert len(ports) == 1, ports
    impair.cap_port(ports.pop(), cap, 25_000)
    try:
        await (
            cleo.locator("#notice")
            .filter(has_text="Your connection is weak")
            .wait_for(timeout=30_000)
        )
        await asyncio.sleep(2)
        c0, a0, b0 = await stats(cleo), await stats(ada), await stats(bea)
        await asyncio.sleep(WINDOW)
        c1, a1, b1 = await stats(cleo), await stats(ada), await stats(bea)
        capped_rate = (video_sent(a1) - video_sent(a0)) / WINDOW
        print(f"Ada's video: {clean_rate * 8 / 1000:.0f} → {capped_rate * 8 / 1000:.0f} kbit/s")
        assert capped_rate >= 0.6 * clean_rate, (clean_rate, capped_rate)
        assert frames(b1, ada_id) - frames(b0, ada_id) > 3 * WINDOW, "Bea's video stalled"
        assert frames(c1, ada_id) - frames(c0, ada_id) <= 2, "video still sent to Cleo"
        hidden = concealment(c0, c1)
        print(f"Cleo's concealed audio while capped: {hidden:.1%}")
        assert hidden <= 0.05
        tile = cleo.locator(f'.tile[data-participant="{ada_id}"] .mark.quality')
        assert await tile.first.text_content() == "video paused"
    finally:
        impair.uncap()
    lifted = time.monotonic()
    await wait_for(lambda: videos_moving(cleo, [ada_id, bea_id], 1.0), 20, "video back")
    took = time.monotonic() - lifted
    print(f"video to Cleo resumed {took:.1f} s after the cap was lifted")
    assert took <= 15


async def meeting(
    shared_server: Any, people: Any, leaders: list[Any], slug: str, n: int, e2ee: bool = False
) -> Any:
    """n people in a new room, every camera arriving at every other page."""
    leaders.append(await start_room(shared_server, slug))
    if e2ee:
        await leaders[-1].send({"type": "set_e2ee", "room": slug, "on": True})
    pages = [await people.page() for _ in range(n)]
    for page, name in zip(pages, ("Ada", "Bea", "Cleo"), strict=False):
        page.set_default_timeout(90_000)
        await open_room(page, slug, name)
    for page in pages:
        await wait_state(page, "room")
    ids = [(await p.evaluate("window.kreis.me"))["id"] for p in pages]
    for page, me in zip(pages, ids, strict=True):
        others = [i for i in ids if i != me]
        await wait_for(lambda p=page, o=others: videos_moving(p, o), 60, "video flows")
    return pages, ids


@pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables")
async def test_ten_percent_loss_costs_little_audio(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    (_, bea), (ada_id, _) = await meeting(shared_server, people, leaders, "verlustig", 2)
    ports = {s["localPort"] for s in (await stats(bea))["inbound"] if s["localPort"]}
    assert len(ports) == 1, ports
    rule = impair.loss(0.10, dport=ports.pop())
    try:
        await asyncio.sleep(8)  # the loss reaches Ada's encoder through receiver reports
        b0 = await stats(bea)
        await asyncio.sleep(2 * WINDOW)
        b1 = await stats(bea)
    finally:
        impair.remove(rule)
    old = {s["participant"]: s for s in inbound(b0, "audio", "mic")}
    new = {s["participant"]: s for s in inbound(b1, "audio", "mic")}
    arrived = new[ada_id]["packetsReceived"] - old[ada_id]["packetsReceived"]
    lost = new[ada_id]["packetsLost"] - old[ada_id]["packetsLost"]
    hidden = concealment(b0, b1)
    print(f"Bea lost {lost / max(1, lost + arrived):.1%} of Ada's audio, concealed {hidden:.1%}")
    assert lost >= 0.05 * (lost + arrived), "the loss was not applied"
    assert hidden <= 0.05


@pytest.mark.parametrize("e2ee", [False, True], ids=["clear", "e2ee"])
async def test_fewer_frames_gives_a_quarter_of_the_frames(
    shared_server: Any, people: Any, leaders: list[Any], e2ee: bool
) -> None:
    slug = f"weniger-bilder-{'e2ee' if e2ee else 'klar'}"
    pages, ids = await meeting(shared_server, people, leaders, slug, 3, e2ee)
    _, bea, cleo = pages
    ada_id = ids[0]
    before: dict[str, Any] = {}
    if e2ee:  # the layers are read and renumbered outside the encrypted frames
        before = await cleo.evaluate("window.kreisE2ee.stats()")
        assert before["state"] == "on" and before["decrypted"] > 0

    async def decoded(page: Any) -> float:
        a = await stats(page)
        await asyncio.sleep(WINDOW)
        return (frames(await stats(page), ada_id) - frames(a, ada_id)) / WINDOW

    await cleo.click("#btn-more")
    await cleo.click("#menu-fewer-frames")
    await cleo.locator("#notice").filter(has_text="a quarter of its frames").wait_for()
    await asyncio.sleep(2)
    bea_fps, cleo_fps = await asyncio.gather(decoded(bea), decoded(cleo))
    print(f"Ada's camera: Bea decodes {bea_fps:.1f} fps, Cleo with fewer frames {cleo_fps:.1f}")
    assert bea_fps >= 8, "the full stream is too slow to tell layers apart"
    assert 0.1 * bea_fps <= cleo_fps <= 0.4 * bea_fps
    await cleo.click("#btn-more")
    assert await cleo.locator("#menu-fewer-frames").get_attribute("aria-pressed") == "true"
    await cleo.click("#menu-fewer-frames")
    await asyncio.sleep(3)  # all layers again from the next keyframe
    bea_fps, cleo_fps = await asyncio.gather(decoded(bea), decoded(cleo))
    print(f"back to all frames: Bea {bea_fps:.1f} fps, Cleo {cleo_fps:.1f}")
    assert cleo_fps >= 0.8 * bea_fps
    if e2ee:
        after = await cleo.evaluate("window.kreisE2ee.stats()")
        assert after["state"] == "on" and after["decrypted"] > before["decrypted"]
        assert after["passedClear"] == before["passedClear"], "clear frames passed"
