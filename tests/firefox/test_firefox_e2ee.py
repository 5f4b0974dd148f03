"""E2EE defences that the Chromium tests prove, proven again in Firefox.

Firefox (ESR, over WebDriver BiDi) has `RTCRtpScriptTransform`, so the engine runs the
same worker there as in Chromium. The replay window (RFC 9605, section 9.3) is shown in
Firefox too: on the E2EE test bench (tests/e2ee/page, served by
tests/e2ee/bench_server.py), a hostile hop between two engines replays frames byte for
byte; Firefox's worker drops and counts each one. The hop's own transforms are
RTCRtpScriptTransforms, which Firefox runs as Chromium does.

A transceiver that appears in a later offer is shown with Chromium as the victim
(tests/e2ee/test_e2ee_hostile.py), the browser known to ignore a receiver transform set
after the answer. A Firefox version of that test was tried and dropped: through the
hostile relay, the replayed offer never made Firefox report the intruder's packets at
all, so it could not tell a defence from no traffic (docs/security.md, "Gaps").

Everything else the hostile tests check is the engine's own logic (index.js,
members.js, round.js), the same JavaScript in both browsers; Firefox and Chromium meeting
with the room secret is `test_firefox.py::test_e2ee_between_firefox_and_chromium`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from bidi import Tab, launch_firefox
from page_checks import wait_for
from test_firefox import firefox_errors

# The E2EE helpers live next to the Chromium tests; this folder reuses them as they are.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2ee"))
from bench_server import bench_server

pytestmark = [
    pytest.mark.firefox,
    pytest.mark.browser,
]


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
