"""One aiortc participant in a Kreis room, for everything that joins from Python.

The console's `--audio` (tui/audio.py), the dial-in gateway (sipgw/roomlink.py), the
benchmarks and the tests all join a room the same way, Galène style: an *up* peer
connection publishes (`up_offer` → `up_answer`), a *down* connection receives whatever
the server offers (`down_offer` → `down_answer`, one negotiation at a time, in arrival
order). This module is that one way; the callers only say what they publish and what
they do with a received frame.

Rules every caller gets without asking:

- ICE servers come from the server's `hello` only (its TURN server, or nothing):
  aiortc would otherwise ask Google's public STUN server, which the privacy rules
  forbid.
- Every received track is read as soon as a frame is there and handed to a callback,
  so aiortc's own (unbounded) frame queues never grow; published audio goes through a
  bounded queue (`PcmTrack`) that drops the oldest frame rather than add latency.
- `audio_only=True` tells the server so (`receive` with `["audio"]`, sent by
  `start()` before the caller's `join`/`dial_in`): the SFU then offers no video
  m-line at all, so no video is received, decoded or queued. Should an offer carry
  one anyway (an older server), it is answered `inactive`.

Like app/client.py it imports no server code: it speaks docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from app.client import KreisClient
from app.protocol import DownOffer, Joined, MediaRestart, UpAnswer, parse_down

log = logging.getLogger(__name__)

QUEUED_FRAMES = 10
"""At most this many 20 ms frames wait to be sent (200 ms); older ones are dropped."""

AudioSink = Callable[[str, av.AudioFrame], None]
"""Called with (source, frame) for every received audio frame; `source` is
"participant#mid" (the participant part is empty when the offer did not say)."""
VideoSink = Callable[[str, av.VideoFrame], None]
"""Called with (source, frame) for every received video frame."""


def rtc_configuration(hello: dict[str, Any]) -> RTCConfiguration:
    """ICE servers from the server's `hello` only: its TURN servers, or none at all."""
    servers: list[RTCIceServer] = []
    for entry in hello.get("ice_servers") or []:
        if not isinstance(entry, dict):
            continue
        urls = entry.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list):
            continue
        turn = [u for u in urls if isinstance(u, str) and u.startswith(("turn:", "turns:"))]
        if turn:
            servers.append(
                RTCIceServer(
                    urls=turn, username=entry.get("username"), credential=entry.get("credential")
                )
            )
    return RTCConfiguration(iceServers=servers)


class PcmTrack(MediaStreamTrack):
    """Mono int16 audio as an aiortc track, 20 ms a frame.

    Frames come either from `source` (awaited for each frame: a microphone, a tone) or,
    without one, from `put()` (the gateway's media thread), through a queue of at most
    `QUEUED_FRAMES`.
    """

    kind = "audio"

    def __init__(self, rate: int, source: Callable[[], Awaitable[np.ndarray]] | None = None):
        super().__init__()
        self.rate = rate
        self._source = source
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=QUEUED_FRAMES)
        self._pts = 0

    def put(self, pcm: np.ndarray) -> None:
        """Queues one frame (on the event loop); the oldest goes when the queue is full."""
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(pcm)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await (self._source() if self._source is not None else self._queue.get())
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += len(pcm)
        return frame


class Tone:
    """A sine tone, 20 ms per call, paced in real time: a microphone for tests and
    benchmarks, whose frequency a receiver can check with an FFT."""

    def __init__(self, hz: float, rate: int = 48000, level: float = 0.3) -> None:
        self.hz = hz
        self.rate = rate
        self.level = level
        self._samples = 0
        self._start: float | None = None

    async def __call__(self) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._samples / self.rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        n = self.rate // 50
        t = (np.arange(n) + self._samples) / self.rate
        self._samples += n
        return (np.sin(2 * math.pi * self.hz * t) * self.level * 32767).astype(np.int16)


def tone_track(hz: float, rate: int = 48000, level: float = 0.3) -> PcmTrack:
    """A track that plays `Tone(hz)`."""
    return PcmTrack(rate, Tone(hz, rate, level))


class PatternTrack(MediaStreamTrack):
    """A moving colour pattern, 320×240 at `fps`, paced in real time: a camera for
    tests and benchmarks."""

    kind = "video"

    def __init__(self, fps: int = 30) -> None:
        super().__init__()
        self.fps = fps
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._n / self.fps - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        image = np.zeros((240, 320, 3), np.uint8)
        image[..., 0] = (np.arange(320, dtype=np.uint16) + self._n * 4) % 256
        image[..., 1] = (np.arange(240, dtype=np.uint16)[:, None] + self._n * 2) % 256
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self._n * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


def mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame as mono int16 (aiortc decodes Opus to interleaved stereo)."""
    data = frame.to_ndarray().reshape(-1)
    channels = len(frame.layout.channels)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data.astype(np.int16)


class MonoResampler:
    """Received audio as mono int16 at one rate, with one resampler per source (a
    resampler keeps state between frames, so sources must not share one)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._by_source: dict[str, av.AudioResampler] = {}

    @property
    def sources(self) -> list[str]:
        return list(self._by_source)

    def __call__(self, source: str, frame: av.AudioFrame) -> list[np.ndarray]:
        resampler = self._by_source.get(source)
        if resampler is None:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)
            self._by_source[source] = resampler
        return [out.to_ndarray().reshape(-1).astype(np.int16) for out in resampler.resample(frame)]


class RoomParticipant:
    """The media side of one `KreisClient` that has joined a room.

    `await start()` once the client is connected (before `join`/`dial_in`), `publish()`
    after `joined`, `close()` at the end. Received audio goes to `on_audio`, video to
    `on_video` (never asked for when `audio_only`).
    """

    def __init__(
        self,
        client: KreisClient,
        *,
        audio_only: bool = True,
        on_audio: AudioSink | None = None,
        on_video: VideoSink | None = None,
    ) -> None:
        self.client = client
        self.audio_only = audio_only
        self.on_audio = on_audio
        self.on_video = on_video
        self.id = ""
        """This participant's id (from `joined`)."""
        self.up: RTCPeerConnection | None = None
        self.down: RTCPeerConnection | None = None
        self.offers_answered = 0
        self.restarts = 0
        """`media_restart`s followed (the server's SFU worker died and runs again)."""
        self._published: list[tuple[MediaStreamTrack, str]] = []
        self._owners: dict[str, str] = {}
        self._up_answer: asyncio.Future[UpAnswer] | None = None
        self._down_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Follows the client's messages; answers any down offer that came already.
        Call it before `join`/`dial_in`: an audio-only participant says so here."""
        if self.audio_only and not self.id:
            await self.client.send({"type": "receive", "kinds": ["audio"]})
        if self._got not in self.client.on_message:
            self.client.on_message.append(self._got)
        joined = self.client.latest("joined")
        if joined is not None and not self.id:
            self.id = str(joined.get("id") or "")
        for offer in self.client.drain("down_offer"):
            self._got(offer)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _got(self, data: dict[str, Any]) -> None:
        if data.get("type") not in ("joined", "up_answer", "down_offer", "media_restart"):
            return  # the rest is the owner's business (console, gateway, test)
        msg = parse_down(data)
        if isinstance(msg, Joined):
            self.id = str(msg.id or "")
        elif isinstance(msg, UpAnswer):
            if self._up_answer is not None and not self._up_answer.done():
                self._up_answer.set_result(msg)
        elif isinstance(msg, DownOffer):
            self._spawn(self._answer(msg))  # its own task: the reader keeps reading
        elif isinstance(msg, MediaRestart):
            self._spawn(self._restart())

    async def _restart(self) -> None:
        """Both connections died with the server's SFU worker: new ones, same tracks.
        Holds the down lock, so the down offers that follow wait for the new state."""
        async with self._down_lock:
            if self._closed:
                return
            old = (self.up, self.down)
            self.up = self.down = None
            for pc in old:
                if pc is not None:
                    with contextlib.suppress(Exception):
                        await pc.close()
            self.restarts += 1
        if self._published:
            try:
                await self.publish(self._published)
            except Exception as exc:
                log.warning("publishing again after a media restart failed: %s", exc)

    # ------------------------------------------------------------------ up

    async def publish(
        self, tracks: Sequence[tuple[MediaStreamTrack, str]], timeout: float = 15
    ) -> None:
        """Publishes `(track, source)` pairs ("mic", "camera", "screen") on the up
        connection; audio is offered as Opus only, the codec every browser decodes."""
        self._published = list(tracks)
        up = self.up = RTCPeerConnection(rtc_configuration(self.client.hello))
        described = []
        for track, source in tracks:
            transceiver = up.addTransceiver(track, direction="sendonly")
            if track.kind == "audio":
                opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == "opus"]
                transceiver.setCodecPreferences(opus)
            described.append((transceiver, track.kind, source))
        await up.setLocalDescription(await up.createOffer())
        self._up_answer = asyncio.get_running_loop().create_future()
        infos = [{"mid": str(t.mid), "kind": kind, "source": src} for t, kind, src in described]
        offer = {"type": "up_offer", "sdp": up.localDescription.sdp, "tracks": infos}
        await self.client.send(offer)
        try:
            answer = await asyncio.wait_for(self._up_answer, timeout)
        finally:
            self._up_answer = None
        await up.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))

    # ------------------------------------------------------------------ down

    async def _answer(self, offer: DownOffer) -> None:
        async with self._down_lock:  # one negotiation at a time, in arrival order
            if self._closed:
                return
            for info in offer.tracks or []:
                if isinstance(info, dict) and "mid" in info:
                    self._owners[str(info["mid"])] = str(info.get("participant") or "")
            try:
                if self.down is None:
                    self.down = RTCPeerConnection(rtc_configuration(self.client.hello))
                    self.down.on("track", self._got_track)
                down = self.down
                await down.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
                if self.audio_only:
                    for transceiver in down.getTransceivers():
                        if transceiver.kind != "audio":
                            transceiver.direction = "inactive"
                await down.setLocalDescription(await down.createAnswer())
                await self.client.send({"type": "down_answer", "sdp": down.localDescription.sdp})
                self.offers_answered += 1
            except Exception:
                log.exception("could not answer a down offer")

    def _got_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" or not self.audio_only:
            self._spawn(self._read(track))

    def _source(self, track: MediaStreamTrack) -> str:
        if self.down is not None:
            for transceiver in self.down.getTransceivers():
                if transceiver.receiver.track is track and transceiver.mid is not None:
                    return self._owners.get(transceiver.mid, "") + "#" + transceiver.mid
        return "#" + track.id

    async def _read(self, track: MediaStreamTrack) -> None:
        """Takes every frame as it is decoded, so aiortc's queue stays empty."""
        source = ""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                source = source or self._source(track)
                if isinstance(frame, av.AudioFrame):
                    if self.on_audio is not None:
                        self.on_audio(source, frame)
                elif isinstance(frame, av.VideoFrame) and self.on_video is not None:
                    self.on_video(source, frame)

    # ------------------------------------------------------------------ end

    async def close(self) -> None:
        """Stops reading and closes both connections (not the client); safe twice."""
        self._closed = True
        if self._got in self.client.on_message:
            self.client.on_message.remove(self._got)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pc in (self.up, self.down):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        self.up = self.down = None
