"""One weak downlink must not spoil the meeting (issue 15), in real Chromium.

Three people; Cleo's downlink (the SFU → Cleo connection, found by its local port) is
capped with `tc htb` in the test's own network namespace, at 40 % of what she received
(500 kbit/s at most, 150 at least). Then:

- the publishers keep their rate: Ada's video goes out at least 60 % as fast as before
  the cap (the SFU used to pass the lowest receiver's estimate to every publisher, and
  everyone's video fell to a quarter);
- Bea, whose link is fine, keeps decoding Ada's video;
- Cleo's video is paused, Cleo hears both others with at most 5 % concealed audio, and
  her page says in plain words that her connection is weak;
- when the cap is lifted, video reaches Cleo again within 15 s.

Measured from getStats() of the pages; nothing is assumed. Needs `tc` (root in the
test namespace), as every test here runs.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import pytest
from meeting_pages import inbound, open_room, start_room, stats, wait_for, wait_state

from bench import impair

pytestmark = [
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
]

CAP_KBIT = 500
WINDOW = 8.0


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
