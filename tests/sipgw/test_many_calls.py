"""More calls than one gateway process can hold, through the SIP front, in two rooms.

Everything is real: the `kreis serve` process, `kreis dial-in` with `processes = 2`
and `max_calls = 4` (8 call slots; one pjsua2 process holds 4) as its own process
tree, six baresip phones dialling at once with their rooms' PINs (RFC 4733), a leader
per room, and an aiortc participant per room recording what the room hears.

Which process serves a call is measured, not assumed: each backend has its own RTP
range, and baresip logs the port the call's RTP arrives from. The test checks that
the calls are spread over both backends, that one admitted caller per backend is heard
in its room (FFT), that one hang-up leaves the other calls up, that a 9th call beyond
the 8 slots gets 486 Busy Here, and that a backend killed with SIGKILL is restarted
while the other backend's calls go on, and serves a new call afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.participant import (
    RoomParticipant,
    leader_session,
    wait_entrant,
    wait_entrants,
)
from tests.sipgw.phones import (
    BaresipPhone,
    DialInCommand,
    flood_answered,
    flood_refusals,
    hears,
    run_sipp,
    run_tool,
    sipp_flood,
)

pytestmark = [pytest.mark.sip, pytest.mark.timeout(150)]

SLUG_A, SLUG_B = "viele-anrufe-a", "viele-anrufe-b"
TONES = [440.0, 560.0, 680.0, 800.0, 920.0, 1040.0]
"""What each phone sends; phones 0-2 call room A, phones 3-5 room B."""
GUEST_A, GUEST_B = 1800.0, 2000.0
MAX_CALLS, PROCESSES = 4, 2


def free_udp_block(size: int) -> int:
    """The first of `size` consecutive UDP ports on 127.0.0.1 that are free right now."""
    for _ in range(50):
        base = random.randrange(50000, 60000 - size)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free block of UDP ports")


class DialIn(DialInCommand):
    """`kreis dial-in` with several processes, run as a real command."""

    def __init__(self, workdir: Path, server_ws: str, extra: str = "") -> None:
        self.stride = 2 * MAX_CALLS + 16
        super().__init__(
            workdir,
            server_ws,
            secret="gateway-geheimnis-5678",
            rtp_port=free_udp_block(PROCESSES * self.stride),
            sip_extra=f"lockout_seconds = 60\nmax_calls = {MAX_CALLS}\n"
            f"processes = {PROCESSES}\n{extra}",
        )

    def backend_pids(self) -> dict[int, int]:
        found = re.findall(r"backend (\d+) started \(pid (\d+)\)", self.log())
        return {int(i): int(pid) for i, pid in found}

    def backend_of(self, rtp_peer_port: int) -> int:
        return (rtp_peer_port - self.rtp_port) // self.stride


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sipp_in_background(
    scenario: Path, target: str, workdir: Path, timeout: float
) -> asyncio.Task[subprocess.CompletedProcess[bytes]]:
    """`run_sipp` in a directory of its own, on a thread, while the test goes on."""
    workdir.mkdir()
    return asyncio.create_task(asyncio.to_thread(run_sipp, scenario, target, workdir, timeout))


async def backend_of_phone(dial_in: DialIn, phone: BaresipPhone) -> int:
    for _ in range(100):
        port = phone.rtp_peer_port()
        if port is not None:
            return dial_in.backend_of(port)
        await asyncio.sleep(0.05)
    raise AssertionError("the phone never received RTP:\n" + phone.output()[-1500:])


async def test_six_calls_over_two_processes_in_two_rooms(kreis_server: Any, tmp_path: Path) -> None:
    for tool in ("baresip", "sipp"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    url = kreis_server.url
    leader_a, pin_a = await leader_session(url, kreis_server.group, kreis_server.password, SLUG_A)
    leader_b, pin_b = await leader_session(url, kreis_server.group, kreis_server.password, SLUG_B)
    guest_a = RoomParticipant(url, SLUG_A, "Gast A", GUEST_A)
    guest_b = RoomParticipant(url, SLUG_B, "Gast B", GUEST_B)
    dial_in = DialIn(tmp_path / "dial-in", kreis_server.ws_url)
    phones: list[BaresipPhone] = []
    fillers: list[asyncio.Task[Any]] = []
    try:
        await guest_a.join(leader_a)
        await guest_b.join(leader_b)
        await dial_in.wait_log("backend 0 is ready", timeout=60)
        await dial_in.wait_log("backend 1 is ready", timeout=60)
        first_pids = dial_in.backend_pids()

        for i, hz in enumerate(TONES):
            phone = BaresipPhone(tmp_path / f"phone-{i}", f"03011111{10 + i}", hz)
            phones.append(await asyncio.to_thread(phone.start))
        t0 = time.monotonic()
        for phone in phones:
            phone.dial(dial_in.uri)
        established = await asyncio.gather(
            *(asyncio.to_thread(p.wait_for, "Call established", 15) for p in phones)
        )
        assert all(established), established
        t_established = time.monotonic() - t0
        backends = [await backend_of_phone(dial_in, p) for p in phones]
        print(f"6 calls established in {t_established:.2f} s; backends per phone: {backends}")
        assert sorted(set(backends)) == [0, 1], backends
        assert max(backends.count(0), backends.count(1)) <= MAX_CALLS

        await asyncio.sleep(1.0)
        await asyncio.gather(
            *(
                asyncio.to_thread(p.digits, (pin_a if i < 3 else pin_b) + "#", 0.22)
                for i, p in enumerate(phones)
            )
        )
        lobby_a, lobby_b = await asyncio.gather(
            wait_entrants(leader_a, SLUG_A, "Telefon", 3),
            wait_entrants(leader_b, SLUG_B, "Telefon", 3),
        )
        names_a = sorted(str(e["name"]) for e in lobby_a)
        names_b = sorted(str(e["name"]) for e in lobby_b)
        print(f"lobby A {names_a}, lobby B {names_b}")
        assert names_a == ["Telefon …10", "Telefon …11", "Telefon …12"]
        assert names_b == ["Telefon …13", "Telefon …14", "Telefon …15"]

        # One caller per backend is admitted: room A's on backend 0, room B's on backend 1.
        in_a = next(i for i in range(3) if backends[i] == 0)
        in_b = next(i for i in range(3, 6) if backends[i] == 1)
        label = {i: f"Telefon …{10 + i}" for i in range(6)}
        entrant_a = next(e for e in lobby_a if e["name"] == label[in_a])
        entrant_b = next(e for e in lobby_b if e["name"] == label[in_b])
        await leader_a.send({"type": "admit", "room": SLUG_A, "id": entrant_a["id"]})
        await leader_b.send({"type": "admit", "room": SLUG_B, "id": entrant_b["id"]})
        admitted = time.monotonic()
        await asyncio.sleep(7)
        room_a = guest_a.heard_since(admitted + 2.0)
        room_b = guest_b.heard_since(admitted + 2.0)

        # Fill the last two slots (SIPp, no PIN), then a 9th INVITE must be busy.
        hold = scenarios.write(tmp_path / "hold.xml", scenarios.info_pin("", hold_ms=9000))
        for n in range(2):
            fillers.append(sipp_in_background(hold, dial_in.target, tmp_path / f"filler-{n}", 30))
        await dial_in.wait_log("a call goes to backend", 8, timeout=10)
        await asyncio.sleep(0.5)
        busy_xml = scenarios.write(tmp_path / "busy.xml", scenarios.rejected(486))
        busy = await asyncio.to_thread(run_sipp, busy_xml, dial_in.target, tmp_path, 15)
        assert busy.returncode == 0, busy.stdout.decode()[-1500:]
        assert dial_in.count("all 8 call slots are busy (486)") == 1
        for task in fillers:
            result = await task
            assert result.returncode == 0, result.stdout.decode()[-1500:]

        # Room A's caller hangs up; every other call stays up.
        phones[in_a].hangup()
        assert await asyncio.to_thread(phones[in_a].wait_for, "terminated", 10)
        hung_up = time.monotonic()
        await asyncio.sleep(4)
        room_b_after = guest_b.heard_since(hung_up + 0.5)
        others = [i for i in range(6) if i != in_a]
        assert not any("terminated" in phones[i].output() for i in others)
        queue_a = leader_a.latest("lobby_queue")
        assert queue_a is not None
        assert sorted(str(e["name"]) for e in queue_a["entrants"]) == sorted(
            label[i] for i in range(3) if i != in_a
        )

        # The leader turns a waiting caller away: the gateway hangs up, its BYE goes
        # from the backend through the front to the phone.
        denied = next(i for i in range(3) if i != in_a)
        entrant = next(e for e in queue_a["entrants"] if e["name"] == label[denied])
        await leader_a.send({"type": "deny", "room": SLUG_A, "id": entrant["id"]})
        assert await asyncio.to_thread(phones[denied].wait_for, "terminated", 15)
        await dial_in.wait_log("finished: denied", timeout=5)
        assert not any("terminated" in phones[i].output() for i in others if i != denied)

        # Backend 0 is killed: it comes back, backend 1's calls (room B's caller) go on.
        pids = dial_in.backend_pids()
        assert pids == first_pids
        os.kill(pids[0], signal.SIGKILL)
        killed = time.monotonic()
        await dial_in.wait_log("backend 0 is ready", 2, timeout=20)
        t_restart = time.monotonic() - killed
        assert dial_in.backend_pids()[1] == pids[1] and alive(pids[1])
        assert dial_in.backend_pids()[0] != pids[0]
        await asyncio.sleep(3)
        room_b_after_kill = guest_b.heard_since(killed + 0.5)
        assert "terminated" not in phones[in_b].output()

        # A new call lands on the restarted backend and reaches the lobby.
        late = BaresipPhone(tmp_path / "phone-late", "0301111116", 1300.0)
        phones.append(await asyncio.to_thread(late.start))
        late.dial(dial_in.uri)
        assert await asyncio.to_thread(late.wait_for, "Call established", 15)
        late_backend = await backend_of_phone(dial_in, late)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(late.digits, pin_a + "#", 0.22)
        await wait_entrant(leader_a, SLUG_A, "Telefon …16")
        print(f"backend 0 restarted in {t_restart:.2f} s; the new call went to {late_backend}")
        assert late_backend == 0
    finally:
        for task in fillers:
            task.cancel()
        for phone in phones:
            await asyncio.to_thread(phone.stop)
        await guest_a.close()
        await guest_b.close()
        await leader_a.close()
        await leader_b.close()
        pids = dial_in.backend_pids()
        code = dial_in.stop()
    print(dial_in.log()[-600:])
    assert code == 0, dial_in.log()[-3000:]
    assert not any(alive(pid) for pid in pids.values()), "a backend outlived the supervisor"
    assert "Traceback" not in dial_in.log(), dial_in.log()[-3000:]

    hears(room_a, TONES[in_a], TONES[in_b], f"room A, caller {in_a} on backend 0")
    hears(room_b, TONES[in_b], TONES[in_a], f"room B, caller {in_b} on backend 1")
    hears(room_b_after, TONES[in_b], TONES[in_a], "room B after A's caller hung up")
    hears(room_b_after_kill, TONES[in_b], TONES[in_a], "room B after backend 0 was killed")


async def test_wrong_pins_count_across_processes(kreis_server: Any, tmp_path: Path) -> None:
    """The lockout is the server's, keyed by a hash of the number that every process
    computes alike: three calls from one number, each with one wrong PIN, spread over
    both backends, lock that number (`[gateway] caller_tries = 3`) on the third."""
    if not shutil.which("sipp"):
        pytest.skip("sipp is not installed")
    dial_in = DialIn(tmp_path / "dial-in", kreis_server.ws_url, extra="pin_tries = 2")
    try:
        await dial_in.wait_log("backend 0 is ready", timeout=60)
        await dial_in.wait_log("backend 1 is ready", timeout=60)
        wrong = scenarios.write(
            tmp_path / "wrong.xml", scenarios.info_pin("111111111#", hold_ms=8000)
        )
        runs = []
        for n in range(3):
            runs.append(sipp_in_background(wrong, dial_in.target, tmp_path / f"call-{n}", 25))
            await dial_in.wait_log("a call goes to backend", n + 1, timeout=10)
            await asyncio.sleep(3.0)  # this call's wrong PIN has been counted
        await dial_in.wait_log("finished: locked", 1, timeout=20)
        log = dial_in.log()
        went = re.findall(r"a call goes to backend (\d)", log)
        print(f"calls went to backends {went}")
        assert set(went) == {"0", "1"}, went
        locked = re.findall(r'call \d+ finished: locked \(\d+ live\)", "part": "backend (\d)"', log)
        assert len(locked) == 1, log[-3000:]  # the third call, and only it
        assert log.count("finished: locked") == 1
        for run in runs:
            await run
    finally:
        code = dial_in.stop()
    assert code == 0, dial_in.log()[-3000:]


async def test_backends_end_with_their_supervisor(tmp_path: Path) -> None:
    """A supervisor killed outright (SIGKILL, no clean-up) leaves no backend behind."""
    dial_in = DialIn(tmp_path / "dial-in", "ws://127.0.0.1:9/ws")
    try:
        await dial_in.wait_log("backend 0 is ready", timeout=60)
        await dial_in.wait_log("backend 1 is ready", timeout=60)
        pids = dial_in.backend_pids()
        assert len(pids) == 2 and all(alive(pid) for pid in pids.values())
        dial_in.proc.kill()
        dial_in.proc.wait(5)
        killed = time.monotonic()
        while any(alive(pid) for pid in pids.values()):
            assert time.monotonic() - killed < 10, "a backend outlived its supervisor"
            await asyncio.sleep(0.1)
        print(f"backends gone {time.monotonic() - killed:.2f} s after the supervisor")
    finally:
        dial_in.stop()


async def test_flood_and_scan_through_the_front(kreis_server: Any, tmp_path: Path) -> None:
    """An INVITE flood beyond the 8 slots is answered 486 (as a lone gateway answers
    beyond its 4), nothing crashes or restarts, and a scan learns no version.

    A real server answers the gateway's lockout check before each call is answered
    (without one every call gets 503: the gateway cannot know whether a caller is
    locked out, and never lets one in unchecked)."""
    for tool in ("sipp", "svmap"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    dial_in = DialIn(tmp_path / "dial-in", kreis_server.ws_url)
    try:
        await dial_in.wait_log("backend 0 is ready", timeout=60)
        await dial_in.wait_log("backend 1 is ready", timeout=60)
        pids = dial_in.backend_pids()
        flood = await asyncio.to_thread(sipp_flood, dial_in.target, tmp_path, 16, 400)
        failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", flood)
        print(
            f"flood: {flood_answered(flood)} answered, "
            f"{failed and failed.group(1)} refused, busy at the front: "
            f"{dial_in.count('call slots are busy (486)')}"
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
