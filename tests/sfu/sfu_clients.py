"""Real aiortc clients on loopback for the SFU tests: publishers and subscribers.

They talk to a Router in the same process through its public API, exactly as app/
will relay the signalling. ICE is bound to 127.0.0.1 with the same helper the SFU
uses (aioice leaves loopback out of its candidates), so no packet leaves the host.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpSrPacket
from av import AudioFrame, VideoFrame

from sfu import DownTrackInfo, Router, TrackInfo
from sfu import aiortc_private as private

ROUTER_PORTS = (42000, 42599)
"""UDP ports for the router under test."""
CLIENT_PORTS = (42600, 42999)
"""UDP ports for the test clients (the router under test uses another range)."""

NTP_UNIX_OFFSET = 2208988800
"""Seconds from the NTP epoch (1900) to the Unix epoch (1970)."""
TONE_HZ = 1000.0
SAMPLE_RATE = 48000


CLIENT_PCS: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
"""Every test client's peer connection: a codec made for any other is the router's
(tests/sfu/codec_watch.py)."""


def client_pc() -> RTCPeerConnection:
    # iceServers=[] explicitly: aiortc's default is a public STUN server.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    CLIENT_PCS.add(pc)
    return pc


async def set_local(pc: RTCPeerConnection, description: RTCSessionDescription) -> None:
    private.configure_ice(pc, "127.0.0.1", "127.0.0.1", *CLIENT_PORTS)
    await pc.setLocalDescription(description)


class ToneTrack(MediaStreamTrack):
    """A mono sine tone in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, hz: float = TONE_HZ) -> None:
        super().__init__()
        self._hz = hz
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        n = SAMPLE_RATE // 50
        if self._start is None:
            self._start = time.time()
        else:
            wait = self._start + self._samples / SAMPLE_RATE - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(n) + self._samples) / SAMPLE_RATE
        pcm = (np.sin(2 * math.pi * self._hz * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._samples += n
        return frame


class MovingVideoTrack(MediaStreamTrack):
    """Small frames whose content changes every frame (so VP8 has work to do)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self._w = width
        self._h = height
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.time()
        else:
            wait = self._start + self._n / 30 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        x = np.arange(self._w, dtype=np.uint16)
        y = np.arange(self._h, dtype=np.uint16)[:, None]
        img = np.zeros((self._h, self._w, 3), np.uint8)
        img[..., 0] = ((x + self._n * 4) % 256).astype(np.uint8)
        img[..., 1] = ((y + self._n * 2) % 256).astype(np.uint8)
        img[..., 2] = (self._n * 7) % 256
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self._n * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


@dataclass
class Publisher:
    """Publishes tracks on an up connection."""

    router: Router
    room: str
    id: str
    pc: RTCPeerConnection = field(default_factory=client_pc)
    transceivers: dict[str, RTCRtpTransceiver] = field(default_factory=dict)

    async def publish(
        self,
        tracks: list[tuple[MediaStreamTrack | str, str]],
        munge: Callable[[str], str] = lambda sdp: sdp,
    ) -> None:
        """tracks: (track, or kind for a track-less sender, source).

        munge edits the offer as the router sees it (e.g. other payload type numbers).
        """
        infos = []
        for track, source in tracks:
            t = self.pc.addTransceiver(track, direction="sendonly")
            self.transceivers[source] = t
        await set_local(self.pc, await self.pc.createOffer())
        # Every track still published is announced again on a renegotiation.
        for source, t in self.transceivers.items():
            infos.append(TrackInfo(mid=str(t.mid), kind=t.kind, source=source))
        answer = await self.router.got_up_offer(
            self.room, self.id, munge(self.pc.localDescription.sdp), infos
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def wait_connected(self, timeout: float = 10) -> None:
        await wait_for(lambda: self.pc.connectionState == "connected", timeout)


@dataclass
class Subscriber:
    """Answers down offers and consumes (decodes) or captures what arrives."""

    router: Router
    room: str
    id: str
    capture_raw: bool = False
    """True: record RTP payloads at the receiver and never decode (test 1)."""
    pc: RTCPeerConnection = field(default_factory=client_pc)
    offers: list[list[DownTrackInfo]] = field(default_factory=list)
    offer_sdps: list[str] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)
    audio: list[np.ndarray] = field(default_factory=list)
    raw: list[Any] = field(default_factory=list)
    sender_reports: dict[int, tuple[float, int, int]] = field(default_factory=dict)
    """Down SSRC → (local time, NTP, RTP timestamp) of the last SR received."""
    last_rtp: dict[int, tuple[float, int, str]] = field(default_factory=dict)
    """Down SSRC → (local time, RTP timestamp, kind) of the last packet received."""
    payload_types: set[int] = field(default_factory=set)
    """Payload types of the packets received (when decoding)."""
    answer_delay: float = 0.0
    """Seconds to wait before answering, like a slow browser."""
    overlapping_offers: int = 0
    """Offers that arrived while the previous one was still unanswered (must stay 0)."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _outstanding: bool = False
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    def join(self) -> None:
        self.pc.on("track", self._on_track)
        self.router.add_participant(self.room, self.id, self.on_down_offer)

    async def on_down_offer(self, sdp: str, tracks: list[DownTrackInfo]) -> None:
        # Answer asynchronously, as a remote browser would.
        self.offers.append(tracks)
        self.offer_sdps.append(sdp)
        if self._outstanding:
            self.overlapping_offers += 1
        self._outstanding = True
        self._tasks.append(asyncio.create_task(self._answer(sdp)))

    async def _answer(self, sdp: str) -> None:
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for t in self.pc.getTransceivers():
            if self.capture_raw:
                self._capture(t)
            else:
                self._observe(t)
        await set_local(self.pc, await self.pc.createAnswer())
        self._outstanding = False
        await self.router.got_down_answer(self.room, self.id, self.pc.localDescription.sdp)
        self.answered.set()

    def _capture(self, transceiver: RTCRtpTransceiver) -> None:
        receiver = transceiver.receiver
        if getattr(receiver, "_test_capture", False):
            return
        receiver._test_capture = True  # type: ignore[attr-defined]

        async def record(packet: Any, arrival_time_ms: int) -> None:
            self.raw.append(packet)

        receiver._handle_rtp_packet = record  # type: ignore[method-assign]

    def _observe(self, transceiver: RTCRtpTransceiver) -> None:
        """Records SRs and packet timestamps, then lets aiortc go on as usual."""
        receiver = transceiver.receiver
        if getattr(receiver, "_test_observe", False):
            return
        receiver._test_observe = True  # type: ignore[attr-defined]
        handle_rtp, handle_rtcp = receiver._handle_rtp_packet, receiver._handle_rtcp_packet
        kind = transceiver.kind

        async def rtp(packet: Any, arrival_time_ms: int) -> None:
            self.last_rtp[packet.ssrc] = (time.time(), packet.timestamp, kind)
            self.payload_types.add(packet.payload_type)
            await handle_rtp(packet, arrival_time_ms)

        async def rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self.sender_reports[packet.ssrc] = (
                    time.time(),
                    info.ntp_timestamp,
                    info.rtp_timestamp,
                )
            await handle_rtcp(packet)

        receiver._handle_rtp_packet = rtp  # type: ignore[method-assign]
        receiver._handle_rtcp_packet = rtcp  # type: ignore[method-assign]

    def media_lag(self, ssrc: int) -> float:
        """Seconds between the publisher's send time of the newest packet on ssrc (its
        RTP timestamp mapped to wall-clock time through the latest SR) and its arrival.
        Everything runs on one host, so both clocks are the same time.time()."""
        _, ntp, sr_rtp = self.sender_reports[ssrc]
        arrival, ts, kind = self.last_rtp[ssrc]
        rate = 48000 if kind == "audio" else 90000
        delta = ((ts - sr_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        sent = ntp / (1 << 32) - NTP_UNIX_OFFSET + delta / rate
        return arrival - sent

    def _on_track(self, track: MediaStreamTrack) -> None:
        if not self.capture_raw:
            self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        key = f"{track.kind}:{track.id}"
        self.frames[key] = 0
        try:
            while True:
                frame = await track.recv()
                self.frames[key] += 1
                if track.kind == "audio":
                    self.audio.append(frame.to_ndarray())
        except MediaStreamError:
            pass

    def video_frames(self) -> int:
        return sum(n for k, n in self.frames.items() if k.startswith("video:"))

    def audio_frames(self) -> int:
        return sum(n for k, n in self.frames.items() if k.startswith("audio:"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


def tone_ratio(chunks: list[np.ndarray], hz: float = TONE_HZ) -> tuple[float, float]:
    """(peak frequency, share of energy within ±50 Hz of hz) of decoded 48 kHz audio."""
    pcm = np.concatenate([c.reshape(-1) for c in chunks]).astype(np.float64)
    # aiortc decodes Opus to interleaved stereo s16: take one channel.
    mono = pcm[::2]
    mono = mono[-SAMPLE_RATE:] if len(mono) > SAMPLE_RATE else mono
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)))) ** 2
    freqs = np.fft.rfftfreq(len(mono), 1 / SAMPLE_RATE)
    peak = float(freqs[int(np.argmax(spectrum[1:])) + 1])
    band = spectrum[(freqs > hz - 50) & (freqs < hz + 50)].sum()
    return peak, float(band / max(spectrum.sum(), 1e-9))


async def wait_media_ready(router: Router, room: str, *participants: str) -> None:
    """Waits until the router's own peer connections of participants are connected
    (the client side may report "connected" a little earlier)."""

    def ready() -> bool:
        members = router._rooms.get(room, {})
        conns = [
            c
            for p in participants
            if p in members
            for c in (members[p].up, members[p].down)
            if c is not None
        ]
        return bool(conns) and all(c.pc.connectionState == "connected" for c in conns)

    try:
        await wait_for(ready, 10)
    except TimeoutError:
        members = router._rooms.get(room, {})
        states = {
            f"{p}.{name}": (c.pc.connectionState, c.pc.iceConnectionState, c.pc.signalingState)
            for p in participants
            if p in members
            for name, c in (("up", members[p].up), ("down", members[p].down))
            if c is not None
        }
        raise TimeoutError(f"router connections not ready: {states}") from None


async def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def gather_closing(*closers: Awaitable[Any]) -> None:
    await asyncio.gather(*closers, return_exceptions=True)
