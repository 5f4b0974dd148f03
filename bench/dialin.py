"""What one phone call costs the dial-in gateway, with cameras in the room.

    python -m bench.dialin            (re-runs itself inside its own network namespace)

Everything is real: `kreis serve`, `kreis dial-in` (one gateway process, the small
group's default), three aiortc participants each publishing a 320×240 camera at 30 fps
and a tone, a leader protocol client, and baresip phones that dial in with the room's
PIN and are admitted from the lobby.

The gateway's CPU (user + system, from /proc) is measured over a window with 0, 1, 2
and 4 calls in the room (4 is what one pjsua2 process holds), twice in the same run:

    before   the gateway as it was before audio-only: it receives every camera and
             decodes it (the benchmark's start-up patch makes its room participant
             leave out the `receive` message)
    after    the gateway as shipped: it asks for audio only, its down connection has
             no video m-line

Per call = (CPU with n calls - CPU with 0 calls) / n, in % of one core. The last line
compares the two:

    RESULT before_pct_per_call=… after_pct_per_call=… after_vs_before=…
           calls_per_process=4 calls_per_core_after=…          (one line)

calls_per_core_after is 100 / after_pct_per_call: how many calls one core could carry
in gateway processes, 4 per process (the machine's other load, the server and the
cameras, runs on the same cores and is not counted).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import aioice.ice

from app import participant as shared
from app.client import KreisClient
from bench import own_namespace
from tests.kreis_server import GATEWAY_SECRET, KreisServer, start_server
from tests.sipgw.participant import leader_session, wait_entrant
from tests.sipgw.phones import BaresipPhone, DialInCommand

CAMERAS = 3
CALLS = (1, 2, 4)
WINDOW = float(os.environ.get("KREIS_BENCH_WINDOW", "15"))
SETTLE = 4.0
TICKS = os.sysconf("SC_CLK_TCK")

BEFORE_AUDIO_ONLY = """
import sys

import app.participant as _participant

_init = _participant.RoomParticipant.__init__
_frames = [0]


def _count(source, frame):
    _frames[0] += 1
    if _frames[0] % 100 == 0:
        print(f"bench: video frames decoded {_frames[0]}", file=sys.stderr, flush=True)


def _everything(self, *args, **kwargs):
    kwargs["audio_only"] = False  # as before audio-only: every camera is received
    kwargs["on_video"] = _count
    _init(self, *args, **kwargs)


_participant.RoomParticipant.__init__ = _everything
"""
"""The gateway as it was before audio-only, and a count of the video it decodes."""


def video_frames(gateway: DialInCommand) -> int:
    """Video frames the gateway decoded so far (before audio-only only)."""
    found = re.findall(r"bench: video frames decoded (\d+)", gateway.log())
    return int(found[-1]) if found else 0


def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The cameras' ICE candidates: the namespace has only loopback, which aioice omits."""
    return ["127.0.0.1"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of one process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def cpu_percent(pid: int, seconds: float) -> float:
    start, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (cpu_seconds(pid) - start) / (time.monotonic() - t0)


async def camera(server: KreisServer, leader: KreisClient, slug: str, n: int) -> Any:
    client = KreisClient(server.url, kind="browser")
    media = shared.RoomParticipant(client)
    await client.connect()
    await media.start()
    name = f"Kamera {n}"
    await client.send({"type": "join", "room": slug, "name": name})
    first = await client.expect("joined", "lobby_status", timeout=10)
    if first["type"] == "lobby_status":
        entrant = await wait_entrant(leader, slug, name)
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await client.expect("joined", timeout=10)
    tracks = [(shared.PatternTrack(30), "camera"), (shared.tone_track(300.0 + 100 * n), "mic")]
    await media.publish(tracks)
    return client, media


async def call_in(
    phone: BaresipPhone, gateway: DialInCommand, leader: KreisClient, slug: str, pin: str
) -> None:
    phone.start()
    phone.dial(gateway.uri)
    assert await asyncio.to_thread(phone.wait_for, "Call established", 15), phone.output()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(phone.digits, pin + "#", 0.22)
    entrant = await wait_entrant(leader, slug, "Telefon", timeout=30)
    await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})


async def measure(mode: str, work: Path) -> dict[int, float]:
    """CPU % of the gateway process with 0 and each count in CALLS of calls."""
    server = start_server(work / "server")
    slug = f"bench-telefon-{mode}"
    leader, pin = await leader_session(server.url, server.group, server.password, slug)
    cameras = [await camera(server, leader, slug, n) for n in range(CAMERAS)]
    gateway = DialInCommand(
        work / "gateway",
        server.ws_url,
        secret=GATEWAY_SECRET,
        rtp_port=20000 if mode == "before" else 24000,
        site_extra=BEFORE_AUDIO_ONLY if mode == "before" else "",
    )
    phones: list[BaresipPhone] = []
    out: dict[int, float] = {}
    try:
        await gateway.wait_log("SIP gateway listening", timeout=30)
        await asyncio.sleep(SETTLE)
        out[0] = await cpu_percent(gateway.proc.pid, WINDOW)
        print(f"{mode}: 0 calls, gateway {out[0]:.1f} % of a core", flush=True)
        for count in CALLS:
            while len(phones) < count:
                phone = BaresipPhone(
                    work / f"phone{len(phones)}", number=f"03012345{len(phones):02d}"
                )
                phones.append(phone)
                await call_in(phone, gateway, leader, slug, pin)
            await asyncio.sleep(SETTLE)
            frames = video_frames(gateway)
            out[count] = await cpu_percent(gateway.proc.pid, WINDOW)
            fps = (video_frames(gateway) - frames) / WINDOW
            print(
                f"{mode}: {count} calls, gateway {out[count]:.1f} % of a core,"
                f" decoding {fps:.0f} video frames/s",
                flush=True,
            )
    finally:
        for phone in phones:
            phone.stop()
        gateway.stop()
        for client, media in cameras:
            await media.close()
            await client.close()
        await leader.close()
        server.stop()
    return out


def per_call(cpu: dict[int, float]) -> float:
    """The mean extra CPU per call over the measured counts, in % of a core."""
    return sum((cpu[n] - cpu[0]) / n for n in CALLS) / len(CALLS)


async def bench() -> None:
    with tempfile.TemporaryDirectory(prefix="kreis-bench-dialin-") as tmp:
        before = await measure("before", Path(tmp) / "before")
        after = await measure("after", Path(tmp) / "after")
    b, a = per_call(before), per_call(after)
    print(
        f"RESULT before_pct_per_call={b:.1f} after_pct_per_call={a:.1f}"
        f" after_vs_before={a / b:.2f} calls_per_process=4"
        f" calls_per_core_after={100 / a:.1f}"
    )


def main() -> None:
    own_namespace("bench.dialin")
    aioice.ice.get_host_addresses = loopback_only
    asyncio.run(bench())


if __name__ == "__main__":
    main()
