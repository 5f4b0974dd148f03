"""`kreis dial-in` behind Kamailio as a real process tree, and what the tests read from it.

`EdgeDialIn` runs `kreis dial-in` with several gateway processes (so Kamailio is the SIP
edge); which backend took a call is read from the backends' own log lines ("call N
ringing", tagged with their `part`) or, for a phone, from the RTP port its call's
media comes from (each backend has its own RTP range). `dispatcher` asks the running
Kamailio (kamcmd over its control socket) for each gateway's state and call load.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
from pathlib import Path

from tests.sipgw.phones import BaresipPhone, DialInCommand, run_sipp

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


class EdgeDialIn(DialInCommand):
    """`kreis dial-in` with several processes behind Kamailio, run as a real command."""

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

    async def ready(self) -> None:
        """Kamailio listens and both backends are up (and probed once)."""
        await self.wait_log("Kamailio is listening", timeout=30)
        await self.wait_log("backend 0 is ready", timeout=60)
        await self.wait_log("backend 1 is ready", timeout=60)
        for _ in range(100):
            if all(d["active"] for d in self.dispatcher().values()):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the gateways never became active: {self.dispatcher()}")

    def backend_pids(self) -> dict[int, int]:
        found = re.findall(r"backend (\d+) started \(pid (\d+)\)", self.log())
        return {int(i): int(pid) for i, pid in found}

    def kamailio_pid(self) -> int:
        found = re.findall(r"Kamailio started \(pid (\d+)\)", self.log())
        assert found, self.log()[-2000:]
        return int(found[-1])

    def backend_of(self, rtp_peer_port: int) -> int:
        return (rtp_peer_port - self.rtp_port) // self.stride

    def ringing(self) -> list[int]:
        """The backend of every call so far, in order (from the backends' own lines)."""
        found = re.findall(r'call \d+ ringing \(\d+ live\)", "part": "backend (\d)"', self.log())
        return [int(b) for b in found]

    def control_socket(self) -> Path:
        args = Path(f"/proc/{self.kamailio_pid()}/cmdline").read_bytes().split(b"\0")
        config = Path(args[args.index(b"-f") + 1].decode())
        return config.parent / "ctl.sock"

    def dispatcher(self) -> dict[int, dict[str, object]]:
        """Per backend index: `active` (dispatcher's A flag) and `load` (live calls)."""
        kamcmd = shutil.which("kamcmd") or "kamcmd"
        out = subprocess.run(
            [kamcmd, "-s", f"unix:{self.control_socket()}", "dispatcher.list"],
            capture_output=True,
            timeout=10,
            text=True,
        ).stdout
        found = re.findall(r"FLAGS: (\w+).*?DUID: b(\d+)\S*.*?DLGLOAD: (\d+)", out, re.S)
        return {
            int(index): {"active": flags.startswith("A"), "load": int(load)}
            for flags, index, load in found
        }


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


async def backend_of_phone(dial_in: EdgeDialIn, phone: BaresipPhone) -> int:
    for _ in range(100):
        port = phone.rtp_peer_port()
        if port is not None:
            return dial_in.backend_of(port)
        await asyncio.sleep(0.05)
    raise AssertionError("the phone never received RTP:\n" + phone.output()[-1500:])
