"""E2EE defences that the Chromium tests prove, proven again in Firefox.

Firefox (ESR, over WebDriver BiDi) has `RTCRtpScriptTransform`, so the engine runs the
same worker there as in Chromium. Two defences are shown in Firefox too:

- the replay window (RFC 9605, section 9.3): on the E2EE test bench (tests/e2ee/page,
  served by tests/e2ee/bench_server.py), a hostile hop between two engines replays
  frames byte for byte; Firefox's worker drops and counts each one. The hop's own
  transforms are RTCRtpScriptTransforms, which Firefox runs as Chromium does;
- a transceiver that appears in a later offer: through the hostile relay
  (tests/e2ee/hostile_relay.py) the victim is a Firefox page, and the intruder's clear
  video on a track the first offer did not name never decodes there.

Everything else the hostile tests check is the engine's own logic (index.js,
members.js, round.js), the same JavaScript in both browsers; Firefox and Chromium meeting
with the room secret is `test_firefox.py::test_e2ee_between_firefox_and_chromium`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bidi import Tab, launch_firefox
from page_checks import Evaluating, media, start_room, wait_for
from test_firefox import firefox_errors, firefox_knocks, in_room, my_id

# The E2EE helpers live next to the Chromium tests; this folder reuses them as they are.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2ee"))
from bench_server import bench_server
from hostile_relay import HostileRelay
from test_e2ee_hostile import hide_newcomer, launched, pages_in
from test_e2ee_server_tap import inbound_video, intruder_joins, publish_plain_vp8

pytestmark = [
    pytest.mark.firefox,
    pytest.mark.browser,
]


async def e2ee(page: Evaluating) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.kreisE2ee.stats()")
    return result


async def bench_stats(tab: Tab, who: str) -> dict[str, Any]:
    result: dict[str, Any] = await tab.evaluate(f"kreisTest.stats('{who}')")
    return result


async def test_firefox_drops_a_replayed_frame_and_counts_it() -> None:
    async with launch_firefox() as firefox:
        await firefox.command("session.subscribe", {"events": ["log.entryAdded"]})
        tab = await firefox.new_tab()
        with bench_server() as url:
            await tab.goto(f"{url}/test/loopback.html")

            async def ready() -> bool:
                return bool(await tab.evaluate("document.body.dataset.ready === '1'"))

            await wait_for(ready, 15, "the bench in Firefox")
            await tab.evaluate(
                "(async () => { for (const id of ['alice', 'bob']) "
                "await kreisTest.addPerson(id, {}); return 1; })()"
            )
            await tab.evaluate(
                "Promise.all([kreisTest.enable('alice'), kreisTest.enable('bob')]).then(() => 1)"
            )
            await tab.evaluate("kreisTest.connectViaReplayer('alice', 'bob')")

            async def decrypted() -> int:
                s = await bench_stats(tab, "bob")
                return int(s["perParticipant"].get("alice", {}).get("decrypted", 0))

            async def enough() -> bool:
                return await decrypted() >= 100

            await wait_for(enough, 20, "bob decrypts alice in Firefox")
            before = await bench_stats(tab, "bob")
            assert before["droppedBy"]["replay"] == 0, before
            await tab.evaluate("kreisTest.replay('alice', 'bob', 20)")
            await asyncio.sleep(2.0)
            after = await bench_stats(tab, "bob")
            assert after["droppedBy"]["replay"] >= 15, after["droppedBy"]
            assert after["droppedBy"]["badTag"] == before["droppedBy"]["badTag"], after
            assert await decrypted() > before["perParticipant"]["alice"]["decrypted"] + 30
        errors = firefox_errors(firefox)
    assert not errors, errors


@pytest.mark.wip  # the intruder's packets never show in Firefox's inbound stats after
# the replayed offer (the relay's hidden offer sent again); not yet understood (issue 12)
async def test_firefox_never_renders_clear_media_from_a_late_transceiver(
    server_factory: Any,
) -> None:
    server = server_factory("late-firefox")
    slug = "spaeter-fuchs"
    leader = await start_room(server, slug)
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    fragment = "#s=" + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    try:
        async with (
            launched() as chromium,
            HostileRelay(server.url) as relay,
            launch_firefox() as firefox,
        ):
            pages, (chrome_id,) = await pages_in(chromium, relay, slug, ["Ahorn"], fragment)
            fox = await firefox.new_tab()
            await firefox_knocks(fox, relay.url, slug, "Fuchs", fragment)
            await wait_for(functools.partial(in_room, fox), 20, "Firefox in the room")
            fox_id = await my_id(fox)

            async def sees_chrome() -> bool:
                return (await media(fox)).get(chrome_id, {}).get("frames", 0) > 0

            await wait_for(sees_chrome, 40, "Firefox decodes Chromium's encrypted video")
            victim = relay.by_id(fox_id)
            hidden: dict[str, Any] = {}

            relay.down_hooks.append(hide_newcomer(victim, {chrome_id, fox_id}, hidden))
            intruder, evil = await intruder_joins(server, leader, slug)
            pc = await publish_plain_vp8(intruder)
            try:
                await wait_for(lambda: asyncio.sleep(0, bool(hidden)), 20, "the hidden offer")
                await asyncio.sleep(2.0)  # Firefox answered it
                # The later offer names the track: a transform set now would come late.
                await victim.send_down(dict(hidden))

                async def receiving() -> bool:
                    s = await inbound_video(fox, evil)
                    return s is not None and s["packetsReceived"] > 100

                await wait_for(receiving, 20, "the intruder's packets in Firefox")
                await asyncio.sleep(2.0)
                s = await inbound_video(fox, evil)
                assert s is not None and s["framesDecoded"] == 0, s
                stats = await e2ee(fox)
                assert stats["passedClear"] == 0, stats
                assert stats["perParticipant"].get(evil, {}).get("decrypted", 0) == 0, stats
                before = (await media(fox))[chrome_id]["frames"]
                deadline = time.monotonic() + 10
                while (await media(fox))[chrome_id]["frames"] <= before:
                    assert time.monotonic() < deadline, "Firefox stopped decoding Chromium"
                    await asyncio.sleep(0.25)
            finally:
                await pc.close()
                await intruder.close()
            for page in pages:
                await page.close()
            errors = firefox_errors(firefox)
    finally:
        await leader.close()
    assert not errors, errors
