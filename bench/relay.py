"""The naive baseline: aiortc's own way, decode every publisher once and re-encode
for every subscriber (MediaRelay), measured like the SFU in packets out per CPU-second.

The relay runs in its own process (bench/sfu.py reads its CPU from /proc); the
publishers encode real Opus and VP8 (a relay must be able to decode what it gets) in
the orchestrator's process, and the subscribers count decrypted RTP at the DTLS
transport without decoding. Each subscriber has one down connection per publisher;
signalling is a multiprocessing pipe (no server, no lobby: this is only a baseline).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from app.participant import PatternTrack, tone_track
from bench.measure import cpu_seconds
from sfu import aiortc_private as private

RELAY_PORTS = (43000, 43999)
CLIENT_PORTS = (48000, 48999)


class _Counter:
    """Counts packets (the relay's payloads are real Opus and VP8: no send stamps)."""

    def __init__(self) -> None:
        self.packets = 0

    def count(self, data: bytes) -> None:
        self.packets += 1


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _set_local(
    pc: RTCPeerConnection, desc: RTCSessionDescription, ports: tuple[int, int]
) -> None:
    private.configure_ice(pc, "127.0.0.1", "127.0.0.1", *ports)
    await pc.setLocalDescription(desc)


async def _relay(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    relay = MediaRelay()
    published: dict[str, dict[str, MediaStreamTrack]] = {}
    pcs: dict[Any, RTCPeerConnection] = {}
    while True:
        msg = await loop.run_in_executor(None, conn.recv)
        if msg[0] == "up":
            _, who, sdp = msg
            pc = pcs[who] = _pc()
            tracks = published.setdefault(who, {})
            pc.on("track", lambda track, tracks=tracks: tracks.__setitem__(track.kind, track))
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await _set_local(pc, await pc.createAnswer(), RELAY_PORTS)
            conn.send(pc.localDescription.sdp)
        elif msg[0] == "down":
            _, sub, pub = msg
            pc = pcs[(sub, pub)] = _pc()
            for kind in ("audio", "video"):
                pc.addTrack(relay.subscribe(published[pub][kind]))
            await _set_local(pc, await pc.createOffer(), RELAY_PORTS)
            conn.send(pc.localDescription.sdp)
        elif msg[0] == "down_answer":
            _, sub, pub, sdp = msg
            await pcs[(sub, pub)].setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            conn.send("ok")
        else:
            break
    await asyncio.gather(*(pc.close() for pc in pcs.values()), return_exceptions=True)


def relay_main(conn: Connection) -> None:
    asyncio.run(_relay(conn))


async def _session(conn: Connection, rooms: int, size: int, seconds: float, pid: int) -> Any:
    from bench.sfu import Figures

    loop = asyncio.get_running_loop()

    async def ask(*msg: Any) -> Any:
        conn.send(msg)
        return await loop.run_in_executor(None, conn.recv)

    receipts = _Counter()
    pcs: list[RTCPeerConnection] = []
    names = [[f"r{r}p{i}" for i in range(size)] for r in range(rooms)]
    for room in names:
        for who in room:
            pc = _pc()
            pcs.append(pc)
            pc.addTrack(tone_track(440, level=0.25))
            pc.addTrack(PatternTrack())
            await _set_local(pc, await pc.createOffer(), CLIENT_PORTS)
            answer = await ask("up", who, pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.sleep(1.0)
    for room in names:
        for sub in room:
            for pub in room:
                if pub == sub:
                    continue
                pc = _pc()
                pcs.append(pc)
                offer = await ask("down", sub, pub)
                await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
                for t in pc.getTransceivers():
                    private.mute_receiver(t.receiver, lambda _p: None)
                private.tap_rtp(private.dtls_of(pc.getTransceivers()[0]), lambda _r: receipts.count)
                await _set_local(pc, await pc.createAnswer(), CLIENT_PORTS)
                await ask("down_answer", sub, pub, pc.localDescription.sdp)
    await asyncio.sleep(5.0)  # connections up, encoders warmed up
    n0, cpu0, t0 = receipts.packets, cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    n1, cpu1, t1 = receipts.packets, cpu_seconds(pid), time.monotonic()
    conn.send(("close",))
    await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
    return Figures("relay", n1 - n0, n1 - n0, t1 - t0, cpu1 - cpu0, [])


def run_relay(rooms: int, size: int, seconds: float) -> Any:
    """Measures the relay with rooms x size participants; returns bench.sfu.Figures."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=relay_main, args=(child,), daemon=True)
    proc.start()
    try:
        assert proc.pid is not None
        return asyncio.run(_session(parent, rooms, size, seconds, proc.pid))
    finally:
        proc.join(timeout=20)
        if proc.is_alive():
            proc.terminate()
