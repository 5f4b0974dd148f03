"""Listening and talking from the terminal (`kreis console --audio`).

The console joins the room as an audio-only participant with its own signalling
connection (log in, `join` as leader → `joined`), publishes the microphone on an *up*
peer connection (`up_offer` with one `mic` track) and answers the server's *down*
offers, mixing whatever it receives into the speaker. Everything goes through the
documented protocol, with aiortc for WebRTC.

The sound device is pluggable: `SoundDeviceBackend` uses PortAudio through
`sounddevice`; `FileBackend` reads a WAV file as the "microphone" and writes what it
hears to another WAV file (tests, and machines without a sound card). Without a sound
device `open_backend` raises `AudioError` and the console carries on without audio.

When the server is on this machine (loopback), ICE is told to gather on 127.0.0.1:
aioice leaves loopback out of its host candidates, so without this a console next to
its server could not connect at all, and tests would leave loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import wave
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aioice.ice
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from app.client import KreisClient
from tui.errors import AudioError

__all__ = ["AudioBackend", "AudioError", "ConsoleAudio", "FileBackend", "SoundDeviceBackend"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = SAMPLE_RATE // 50
"""20 ms of mono audio: the unit every backend reads and plays."""
MAX_QUEUED_FRAMES = 10
"""Per remote speaker; older frames are dropped so latency cannot grow (200 ms)."""


# ---------------------------------------------------------------------- backends


class AudioBackend:
    """A microphone and a speaker, in 20 ms frames of mono int16 at 48 kHz."""

    async def start(self) -> None:
        """Opens the device."""

    async def read_frame(self) -> np.ndarray:
        """The next 20 ms from the microphone (waits until it is there)."""
        raise NotImplementedError

    def play(self, pcm: np.ndarray) -> None:
        """Queues 20 ms for the speaker."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Closes the device; safe to call twice."""


class FileBackend(AudioBackend):
    """Microphone from a WAV file (looped, paced in real time), speaker into a WAV file."""

    def __init__(self, mic_wav: Path, speaker_wav: Path) -> None:
        self.mic_path = Path(mic_wav)
        self.speaker_path = Path(speaker_wav)
        try:
            with wave.open(str(self.mic_path), "rb") as source:
                if source.getsampwidth() != 2 or source.getframerate() != SAMPLE_RATE:
                    raise AudioError(f"{self.mic_path.name}: need 16-bit {SAMPLE_RATE} Hz WAV")
                raw = np.frombuffer(source.readframes(source.getnframes()), dtype=np.int16)
                channels = source.getnchannels()
        except (OSError, wave.Error, EOFError) as exc:
            raise AudioError(f"{self.mic_path.name}: {type(exc).__name__}") from exc
        mono = raw.reshape(-1, channels)[:, 0] if channels > 1 else raw
        if len(mono) < FRAME_SAMPLES:
            raise AudioError(f"{self.mic_path.name}: too short")
        self._mic = mono.copy()
        self._pos = 0
        self._start: float | None = None
        self._frames_read = 0
        self._out: wave.Wave_write | None = None
        self.frames_played = 0

    async def start(self) -> None:
        self.speaker_path.parent.mkdir(parents=True, exist_ok=True)
        out = wave.open(str(self.speaker_path), "wb")  # noqa: SIM115 - closed in stop()
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        self._out = out

    async def read_frame(self) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._frames_read * 0.02 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._frames_read += 1
        end = self._pos + FRAME_SAMPLES
        if end <= len(self._mic):
            frame = self._mic[self._pos : end]
            self._pos = end % len(self._mic)
        else:
            frame = np.concatenate([self._mic[self._pos :], self._mic[: end - len(self._mic)]])
            self._pos = end - len(self._mic)
        return frame

    def play(self, pcm: np.ndarray) -> None:
        if self._out is not None:
            self._out.writeframes(pcm.astype(np.int16).tobytes())
            self.frames_played += 1

    async def stop(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.close()


class SoundDeviceBackend(AudioBackend):
    """The computer's sound card through PortAudio (`sounddevice`)."""

    def __init__(self, device: str | int | None = None) -> None:
        try:
            import sounddevice
        except (ImportError, OSError) as exc:  # OSError: PortAudio library missing
            raise AudioError(f"sounddevice: {type(exc).__name__}") from exc
        self._sd: Any = sounddevice
        self.device = device
        try:
            sounddevice.check_input_settings(device, channels=1, samplerate=SAMPLE_RATE)
            sounddevice.check_output_settings(device, channels=1, samplerate=SAMPLE_RATE)
        except Exception as exc:  # PortAudioError, ValueError: no such device
            raise AudioError(str(exc) or type(exc).__name__) from exc
        self._mic: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=MAX_QUEUED_FRAMES)
        self._speaker: deque[np.ndarray] = deque(maxlen=MAX_QUEUED_FRAMES)
        self._streams: list[Any] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def heard(indata: Any, frames: int, time: Any, status: Any) -> None:
            pcm = np.frombuffer(bytes(indata), dtype=np.int16).copy()
            loop.call_soon_threadsafe(self._offer_mic, pcm)

        def speak(outdata: Any, frames: int, time: Any, status: Any) -> None:
            pcm = self._speaker.popleft() if self._speaker else np.zeros(frames, np.int16)
            data = np.zeros(frames, np.int16)
            data[: min(frames, len(pcm))] = pcm[:frames]
            outdata[:] = data.tobytes()

        sd = self._sd
        try:
            for stream in (
                sd.RawInputStream(
                    device=self.device, channels=1, samplerate=SAMPLE_RATE, dtype="int16",
                    blocksize=FRAME_SAMPLES, callback=heard,
                ),
                sd.RawOutputStream(
                    device=self.device, channels=1, samplerate=SAMPLE_RATE, dtype="int16",
                    blocksize=FRAME_SAMPLES, callback=speak,
                ),
            ):  # fmt: skip
                self._streams.append(stream)
                stream.start()
        except Exception as exc:
            await self.stop()
            raise AudioError(str(exc) or type(exc).__name__) from exc

    def _offer_mic(self, pcm: np.ndarray) -> None:
        if self._mic.full():
            self._mic.get_nowait()
        self._mic.put_nowait(pcm)

    async def read_frame(self) -> np.ndarray:
        return await self._mic.get()

    def play(self, pcm: np.ndarray) -> None:
        self._speaker.append(pcm.astype(np.int16))

    async def stop(self) -> None:
        streams, self._streams = self._streams, []
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.stop()
                stream.close()


def open_backend(spec: str | bool | None) -> AudioBackend:
    """`file:MIC.wav:SPEAKER.wav` → FileBackend; "default"/True → the default sound
    device; anything else names a sound device. Raises AudioError."""
    text = "default" if spec is True or spec is None else str(spec)
    if text.startswith("file:"):
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise AudioError("use --audio file:MIC.wav:SPEAKER.wav")
        return FileBackend(Path(parts[1]), Path(parts[2]))
    if text == "default":
        return SoundDeviceBackend()
    return SoundDeviceBackend(int(text) if text.isdigit() else text)


# ---------------------------------------------------------------------- media


class MicTrack(MediaStreamTrack):
    """The backend's microphone as an aiortc audio track."""

    kind = "audio"

    def __init__(self, backend: AudioBackend) -> None:
        super().__init__()
        self._backend = backend
        self._samples = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await self._backend.read_frame()
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._samples += len(pcm)
        return frame


class Mixer:
    """Mixes the remote speakers into one 20 ms stream for the backend's speaker."""

    def __init__(self, backend: AudioBackend) -> None:
        self._backend = backend
        self._queues: dict[str, deque[np.ndarray]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, source: str, pcm: np.ndarray) -> None:
        self._queues.setdefault(source, deque(maxlen=MAX_QUEUED_FRAMES)).append(pcm)

    def drop(self, source: str) -> None:
        self._queues.pop(source, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += 0.02
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            frames = [q.popleft() for q in self._queues.values() if q]
            if not frames:
                continue
            mixed = np.zeros(FRAME_SAMPLES, np.int32)
            for pcm in frames:
                n = min(FRAME_SAMPLES, len(pcm))
                mixed[:n] += pcm[:n]
            self._backend.play(np.clip(mixed, -32768, 32767).astype(np.int16))


def to_mono(frame: AudioFrame) -> np.ndarray:
    """A decoded frame (aiortc gives interleaved s16, usually stereo) as mono int16."""
    data = frame.to_ndarray().reshape(-1)
    channels = len(frame.layout.channels)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data.astype(np.int16)


def is_loopback(server_url: str) -> bool:
    host = urlsplit(server_url if "//" in server_url else "//" + server_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class _LoopbackIce:
    """While installed, aioice gathers host candidates on 127.0.0.1 only."""

    installed = 0
    original = aioice.ice.get_host_addresses

    @classmethod
    def install(cls) -> None:
        if cls.installed == 0:
            aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
        cls.installed += 1

    @classmethod
    def uninstall(cls) -> None:
        cls.installed = max(0, cls.installed - 1)
        if cls.installed == 0:
            aioice.ice.get_host_addresses = cls.original


class ConsoleAudio:
    """The console as an audio-only participant of one room."""

    def __init__(
        self,
        server_url: str,
        group: str,
        password: str,
        backend: AudioBackend,
        lang: str = "en",
        ssl: Any = None,
    ) -> None:
        self.server_url = server_url
        self.group = group
        self._password = password
        self.backend = backend
        self.lang = lang
        self._ssl = ssl
        self.client: KreisClient | None = None
        self.up: RTCPeerConnection | None = None
        self.down: RTCPeerConnection | None = None
        self.mixer = Mixer(backend)
        self.participant_id = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._down_lock = asyncio.Lock()
        self._loopback = is_loopback(server_url)
        self._started = False

    async def start(self, room: str) -> None:
        """Joins `room` as leader, publishes the microphone and plays the room."""
        if self._loopback:
            _LoopbackIce.install()
        await self.backend.start()
        self.mixer.start()
        client = KreisClient(self.server_url, kind="console", lang=self.lang, ssl=self._ssl)
        self.client = client
        await client.connect()
        await client.request(
            {"type": "login", "group": self.group, "password": self._password}, "login_ok"
        )
        joined = await client.request({"type": "join", "room": room, "name": ""}, "joined")
        self.participant_id = str(joined.get("id"))
        self.down = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.down.on("track", self._got_track)
        client.on_message.append(self._got)
        for offer in client.drain("down_offer"):  # offers that came before the callback
            self._spawn(self._answer(offer))
        self.up = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceiver = self.up.addTransceiver(MicTrack(self.backend), direction="sendonly")
        await self.up.setLocalDescription(await self.up.createOffer())
        tracks = [{"mid": str(transceiver.mid or "0"), "kind": "audio", "source": "mic"}]
        answer = await client.request(
            {"type": "up_offer", "sdp": self.up.localDescription.sdp, "tracks": tracks},
            "up_answer",
        )
        await self.up.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await client.send({"type": "media_state", "mic": True, "camera": False, "screen": False})
        self._started = True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _got(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "down_offer":
            self._spawn(self._answer(msg))
        if self._started and self.client is not None:
            self.client.drain()  # nothing waits with expect() any more

    async def _answer(self, offer: dict[str, Any]) -> None:
        async with self._down_lock:  # one negotiation at a time, in arrival order
            down, client = self.down, self.client
            if down is None or client is None:
                return
            try:
                await down.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
                await down.setLocalDescription(await down.createAnswer())
                await client.send({"type": "down_answer", "sdp": down.localDescription.sdp})
            except Exception:
                log.exception("could not answer a down offer")

    def _got_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        source = track.id
        try:
            while True:
                frame = await track.recv()
                self.mixer.add(source, to_mono(frame))  # type: ignore[arg-type]
        except MediaStreamError:
            pass
        finally:
            self.mixer.drop(source)

    async def stop(self) -> None:
        """Leaves the room's audio; safe to call twice."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for pc in (self.up, self.down):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        self.up = self.down = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.send({"type": "leave"})
            await self.client.close()
            self.client = None
        await self.mixer.stop()
        await self.backend.stop()
        if self._loopback:
            self._loopback = False
            _LoopbackIce.uninstall()
