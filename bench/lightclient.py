"""Light participants for the SFU benchmark: real signalling, ICE, DTLS and SRTP, but
no encoder and no decoder.

A light participant joins a room through the server's WebSocket like any client,
publishes an audio and a video m-line whose senders never run aiortc's encoding loop
(pre-built RTP goes straight through the DTLS transport's SRTP context), and answers
the SFU's down offers with a connection whose decrypted RTP is counted and timed at the
DTLS transport, before aiortc would parse, buffer or decode it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from app.client import KreisClient
from bench.fleet import Fleet, wait_until
from bench.measure import Receipts, Stream, extension_block
from sfu import aiortc_private as private

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
JOIN_BATCH = 4
"""Participants set up concurrently (DTLS handshakes are CPU-heavy)."""


def _only(kind: str, mime: str) -> list[Any]:
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == mime]


class LightParticipant:
    """One benchmark participant: publishes synthetic Opus+VP8, counts what arrives."""

    def __init__(
        self, url: str, slug: str, number: int, receipts: Receipts, ports: tuple[int, int]
    ) -> None:
        self.url = url
        self.slug = slug
        self.number = number
        self.receipts = receipts
        self.ports = ports
        self.ws = KreisClient(url, kind="browser")
        self.up = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.down = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.stream: Stream | None = None
        self.seen: set[int] = set()
        """SSRCs received so far (until every other publisher's two streams arrived)."""
        self._tapped: set[int] = set()
        self._answering: asyncio.Task[None] | None = None
        self.offers = 0

    async def join(self) -> None:
        await self.ws.connect()
        self.ws.on_message.append(self._on_message)
        reply = await self.ws.request(
            {"type": "join", "room": self.slug, "name": f"bench {self.number}"},
            "joined",
            "lobby_status",
        )
        if reply["type"] != "joined":
            raise RuntimeError("the benchmark room must have the lobby switched off")

    async def publish(self) -> None:
        audio = self.up.addTransceiver("audio", direction="sendonly")
        video = self.up.addTransceiver("video", direction="sendonly")
        audio.setCodecPreferences(_only("audio", "audio/opus"))
        video.setCodecPreferences(_only("video", "video/vp8"))
        for t in (audio, video):
            private.silence_sender(t.sender, lambda: None, lambda _p: None)
        offer = await self.up.createOffer()
        private.configure_ice(self.up, "127.0.0.1", "127.0.0.1", *self.ports)
        await self.up.setLocalDescription(offer)
        tracks = [
            {"mid": str(audio.mid), "kind": "audio", "source": "mic"},
            {"mid": str(video.mid), "kind": "video", "source": "camera"},
        ]
        reply = await self.ws.request(
            {"type": "up_offer", "sdp": self.up.localDescription.sdp, "tracks": tracks},
            "up_answer",
        )
        await self.up.setRemoteDescription(RTCSessionDescription(reply["sdp"], "answer"))
        self.stream = Stream(
            self.number,
            private.writer_for(audio).write_rtp,
            private.writer_for(video).write_rtp,
            audio_pt=_pt(audio),
            video_pt=_pt(video),
            audio_ssrc=private.sender_ssrc(audio.sender),
            video_ssrc=private.sender_ssrc(video.sender),
            phase=(self.number * 0.37) % 1.0,
            audio_ext=_extensions(audio, {AUDIO_LEVEL: b"\x90"}),
            video_ext=_extensions(video, {ABS_SEND_TIME: b"\x12\x34\x56"}),
        )

    def _on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "down_offer":
            previous = self._answering
            self._answering = asyncio.create_task(self._answer(msg["sdp"], previous))

    async def _answer(self, sdp: str, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        await self.down.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        for t in self.down.getTransceivers():
            self._tap(t)
        answer = await self.down.createAnswer()
        private.configure_ice(self.down, "127.0.0.1", "127.0.0.1", *self.ports)
        await self.down.setLocalDescription(answer)
        await self.ws.send({"type": "down_answer", "sdp": self.down.localDescription.sdp})
        self.offers += 1

    def _tap(self, t: RTCRtpTransceiver) -> None:
        private.mute_receiver(t.receiver, lambda _p: None)
        dtls = private.dtls_of(t)
        if id(dtls) in self._tapped:
            return
        self._tapped.add(id(dtls))
        sink = self._sink

        # Every decrypted RTP packet, without aiortc's parse and routing (RTCP is
        # handled apart, by aiortc as usual).
        async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
            sink(data)

        dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]

    def _sink(self, data: bytes) -> None:
        if len(self.seen) < 64:
            self.seen.add(int.from_bytes(data[8:12], "big"))
        self.receipts.sink(data)

    async def wait_up_connected(self, timeout: float = 30) -> None:
        await wait_until(lambda: self.up.connectionState == "connected", timeout, "up ICE")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        for pc in (self.up, self.down):
            with contextlib.suppress(Exception):
                await pc.close()


def _queued(pc: RTCPeerConnection) -> int:
    total = 0
    for t in pc.getTransceivers()[:1]:
        with contextlib.suppress(Exception):
            conn = private.dtls_of(t).transport._connection
            total += conn._queue.qsize()
            for pair in conn._nominated.values():
                # Datagrams asyncio holds back because the socket would block.
                buffered = getattr(pair.protocol.transport, "get_write_buffer_size", None)
                total += buffered() if buffered is not None else 0
    return total


def _extensions(t: RTCRtpTransceiver, values: dict[str, bytes]) -> bytes:
    """The extension block a browser would put on t's packets: its mid, plus values."""
    elements = []
    for ext_id, uri in sorted(private.negotiated_extensions(t).items()):
        if uri == MID:
            elements.append((ext_id, str(t.mid).encode()))
        elif uri in values:
            elements.append((ext_id, values[uri]))
    return extension_block(elements) if elements else b""


def _pt(t: RTCRtpTransceiver) -> int:
    pt = private.negotiated_codecs(t)[0].payloadType
    if pt is None:
        raise RuntimeError("no payload type negotiated")
    return pt


async def _in_batches(coros: list[Callable[[], Awaitable[None]]], size: int) -> None:
    for i in range(0, len(coros), size):
        await asyncio.gather(*(c() for c in coros[i : i + size]))


async def setup_sfu(fleet: Fleet, params: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    """Fleet setup for the real server: params url, slugs, size, first_number, ports."""
    size = int(params["size"])
    people: list[LightParticipant] = []
    number = int(params["first_number"])
    for slug in params["slugs"]:
        for _ in range(size):
            people.append(
                LightParticipant(params["url"], slug, number, fleet.receipts, params["ports"])
            )
            number += 1

    backlog = [0, 0]

    async def watch_backlog() -> None:
        # Datagrams waiting in aioice's queues (up and down): a client that falls behind.
        while True:
            await asyncio.sleep(0.5)
            for i, attr in enumerate(("up", "down")):
                sizes = [_queued(getattr(p, attr)) for p in people]
                backlog[i] = max(backlog[i], *sizes)

    watcher = asyncio.create_task(watch_backlog())

    async def close() -> None:
        watcher.cancel()
        if params.get("verbose"):
            print(f"client backlog max: up={backlog[0]} down={backlog[1]}", flush=True)
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)

    try:
        await _in_batches([p.join for p in people], JOIN_BATCH * 2)
        await _in_batches([p.publish for p in people], JOIN_BATCH)
        await asyncio.gather(*(p.wait_up_connected() for p in people))
        fleet.streams = [p.stream for p in people if p.stream is not None]
        fleet.expected_per_packet = size - 1
        fleet.start_sending()
        want = 2 * (size - 1)
        try:
            await wait_until(
                lambda: all(len(p.seen) >= want for p in people), 90, "media at every subscriber"
            )
        except TimeoutError:
            short = [
                (p.number, len(p.seen), p.offers, len(p.down.getTransceivers())) for p in people
            ]
            raise TimeoutError(f"not every subscriber gets media: {short}") from None
    except BaseException:
        await fleet.stop_sending()
        await close()
        raise
    return close
