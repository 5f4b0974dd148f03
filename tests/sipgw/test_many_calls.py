"""More calls than one gateway process can hold: lockout, shutdown and floods behind Kamailio.

`kreis dial-in` with `processes = 2` and `max_calls = 4` runs as its own process tree
(Kamailio as the SIP edge, two pjsua2 backends). The calls over both backends, a
killed backend and the ninth call are in `test_kamailio.py`; here: wrong PINs spread
over both backends lock one number, nothing outlives a supervisor killed outright, and
an INVITE flood and a scan through the edge.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.edge import EdgeDialIn, alive, sipp_in_background
from tests.sipgw.phones import flood_answered, flood_refusals, run_tool, sipp_flood

pytestmark = [pytest.mark.sip, pytest.mark.timeout(150)]


async def test_wrong_pins_count_across_processes(kreis_server: Any, tmp_path: Path) -> None:
    """The lockout is the server's, keyed by a hash of the number that every process
    computes alike: three calls from one number, each with one wrong PIN, spread over
    both backends, lock that number (`[gateway] caller_tries = 3`) on the third."""
    if not shutil.which("sipp"):
        pytest.skip("sipp is not installed")
    dial_in = EdgeDialIn(tmp_path / "dial-in", kreis_server.ws_url, extra="pin_tries = 2")
    try:
        await dial_in.ready()
        wrong = scenarios.write(
            tmp_path / "wrong.xml", scenarios.info_pin("111111111#", hold_ms=8000)
        )
        runs = []
        for n in range(3):
            runs.append(sipp_in_background(wrong, dial_in.target, tmp_path / f"call-{n}", 25))
            while len(dial_in.ringing()) < n + 1:
                await asyncio.sleep(0.05)
            await asyncio.sleep(3.0)  # this call's wrong PIN has been counted
        await dial_in.wait_log("finished: locked", 1, timeout=20)
        log = dial_in.log()
        went = dial_in.ringing()
        print(f"calls went to backends {went}")
        assert set(went) == {0, 1}, went
        locked = re.findall(r'call \d+ finished: locked \(\d+ live\)", "part": "backend (\d)"', log)
        assert len(locked) == 1, log[-3000:]  # the third call, and only it
        assert log.count("finished: locked") == 1
        for run in runs:
            await run
    finally:
        code = dial_in.stop()
    assert code == 0, dial_in.log()[-3000:]


async def test_backends_end_with_their_supervisor(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL, no clean-up) leaves no backend and no
    Kamailio behind."""
    dial_in = EdgeDialIn(tmp_path / "dial-in", "ws://127.0.0.1:9/ws")
    try:
        await dial_in.ready()
        pids = dial_in.backend_pids()
        pids[-1] = dial_in.kamailio_pid()
        run_dir = dial_in.control_socket().parent
        assert len(pids) == 3 and all(alive(pid) for pid in pids.values())
        dial_in.proc.kill()
        dial_in.proc.wait(5)
        killed = time.monotonic()
        while any(alive(pid) for pid in pids.values()):
            assert time.monotonic() - killed < 10, "a child outlived its supervisor"
            await asyncio.sleep(0.1)
        print(f"backends and Kamailio gone {time.monotonic() - killed:.2f} s after the supervisor")
        # A supervisor killed outright cannot delete Kamailio's private dir (config and
        # gateway list, no meeting data): the test does.
        assert run_dir.name.startswith("kreis-kamailio-")
        shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        dial_in.stop()


async def test_flood_and_scan_through_the_edge(kreis_server: Any, tmp_path: Path) -> None:
    """An INVITE flood beyond the 8 slots is answered 486 (as a lone gateway answers
    beyond its 4), nothing crashes or restarts, and a scan learns no version.

    A real server answers the gateway's lockout check before each call is answered
    (without one every call gets 503: the gateway cannot know whether a caller is
    locked out, and never lets one in unchecked)."""
    for tool in ("sipp", "svmap", "kamailio"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    dial_in = EdgeDialIn(tmp_path / "dial-in", kreis_server.ws_url)
    try:
        await dial_in.ready()
        pids = dial_in.backend_pids()
        flood = await asyncio.to_thread(sipp_flood, dial_in.target, tmp_path, 16, 400)
        failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", flood)
        print(
            f"flood: {flood_answered(flood)} answered, "
            f"{failed and failed.group(1)} refused, calls that reached a backend: "
            f"{len(dial_in.ringing())}"
        )
        assert flood_answered(flood) >= 20, flood[-1500:]
        assert flood_refusals(flood) <= {"486"}, flood[-1500:]
        scan = run_tool(["svmap", "-p", str(dial_in.port), "127.0.0.1"], tmp_path, 30)
        assert "Kreis dial-in" in scan and "pjsip" not in scan.lower(), scan
        assert dial_in.backend_pids() == pids, "a backend died under the flood"
        assert "Traceback" not in dial_in.log(), dial_in.log()[-3000:]
    finally:
        code = dial_in.stop()
    assert code == 0, dial_in.log()[-3000:]
