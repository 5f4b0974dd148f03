"""Listening and talking from the terminal (`kreis console --audio`).

The console joins the room as an audio-only participant with its own signalling
connection (log in, `join` as leader → `joined`) and `app.participant.RoomParticipant`
does the media: the microphone published as one `mic` track, the server's down offers
answered with every video m-line inactive (the console never receives video), every
voice it hears mixed into the speaker. Everything goes through the documented protocol,
with aiortc for WebRTC, and the ICE servers (TURN) the server names in its `hello`.

The sound device is pluggable: `SoundDeviceBackend` uses PortAudio through
`sounddevice`; `FileBackend` reads a WAV file as the "microphone" and writes what it
hears to another WAV file (tests, and machines without a sound card). Without a sound
device `open_backend` raises `AudioError` and the console carries on without audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from av import AudioFrame

from app.client import KreisClient
from app.participant import PcmTrack, RoomParticipant, mono
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
        self.media: RoomParticipant | None = None
        self.mixer = Mixer(backend)
        self.participant_id = ""
        self._started = False

    async def start(self, room: str) -> None:
        """Joins `room` as leader, publishes the microphone and plays the room."""
        await self.backend.start()
        self.mixer.start()
        client = KreisClient(self.server_url, kind="console", lang=self.lang, ssl=self._ssl)
        self.client = client
        await client.connect()
        await client.request(
            {"type": "login", "group": self.group, "password": self._password}, "login_ok"
        )
        self.media = RoomParticipant(client, audio_only=True, on_audio=self._heard)
        await self.media.start()
        joined = await client.request({"type": "join", "room": room, "name": ""}, "joined")
        self.participant_id = str(joined.get("id"))
        await self.media.publish([(PcmTrack(SAMPLE_RATE, self.backend.read_frame), "mic")])
        await client.send({"type": "media_state", "mic": True, "camera": False, "screen": False})
        self._started = True

    def _heard(self, source: str, frame: AudioFrame) -> None:
        self.mixer.add(source, mono(frame))

    async def stop(self) -> None:
        """Leaves the room's audio; safe to call twice."""
        if self.media is not None:
            await self.media.close()
            self.media = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.send({"type": "leave"})
            await self.client.close()
            self.client = None
        await self.mixer.stop()
        await self.backend.stop()
