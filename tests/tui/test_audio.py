"""Listening and talking from the console, end to end through a real server.

The console runs with `--audio file:MIC.wav:SPEAKER.wav` (the file-backed stand-in for
the sound card). A browser-like aiortc participant in the room sends a 1000 Hz tone
and records what it receives. The console's 440 Hz "microphone" must reach the
participant, and the participant's tone must reach the console's speaker file; both
are measured at their frequency with an FFT.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
import wave
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from test_console_flow import SIZE, guest, log_in_and_start_room, wait_for

from app.client import KreisClient
from tui.app import KreisConsole
from tui.audio import FileBackend, open_backend

RATE = 48000
CONSOLE_HZ = 440.0
GUEST_HZ = 1000.0

pytestmark = pytest.mark.tui


def write_tone(path: Path, hz: float, seconds: float = 2.0) -> None:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (np.sin(2 * math.pi * hz * t) * 9000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())


def peak_hz(mono: np.ndarray) -> tuple[float, float]:
    """(strongest frequency, share of energy within ±50 Hz of it) of 48 kHz audio."""
    x = mono.astype(np.float64)[-RATE:]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    peak = float(freqs[int(np.argmax(spectrum[1:])) + 1])
    band = spectrum[(freqs > peak - 50) & (freqs < peak + 50)].sum()
    return peak, float(band / max(spectrum.sum(), 1e-9))


class Tone(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hz: float) -> None:
        super().__init__()
        self.hz = hz
        self.samples = 0
        self.start: float | None = None

    async def recv(self) -> AudioFrame:
        n = RATE // 50
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.samples / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(n) + self.samples) / RATE
        pcm = (np.sin(2 * math.pi * self.hz * t) * 9000).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.samples
        frame.time_base = fractions.Fraction(1, RATE)
        self.samples += n
        return frame


class Participant:
    """A browser-like participant: up connection with a tone, down connection recorded."""

    def __init__(self, client: KreisClient) -> None:
        self.client = client
        self.up = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.down = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.heard: list[np.ndarray] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.lock = asyncio.Lock()
        self.down.on(
            "track", lambda track: self.tasks.append(asyncio.create_task(self.record(track)))
        )
        client.on_message.append(self.got)

    def got(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "down_offer":
            self.tasks.append(asyncio.create_task(self.answer(msg["sdp"])))

    async def answer(self, sdp: str) -> None:
        async with self.lock:
            await self.down.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await self.down.setLocalDescription(await self.down.createAnswer())
            await self.client.send({"type": "down_answer", "sdp": self.down.localDescription.sdp})

    async def publish(self, hz: float) -> None:
        transceiver = self.up.addTransceiver(Tone(hz), direction="sendonly")
        await self.up.setLocalDescription(await self.up.createOffer())
        answer = await self.client.request(
            {
                "type": "up_offer",
                "sdp": self.up.localDescription.sdp,
                "tracks": [{"mid": transceiver.mid or "0", "kind": "audio", "source": "mic"}],
            },
            "up_answer",
        )
        await self.up.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await self.client.send(
            {"type": "media_state", "mic": True, "camera": False, "screen": False}
        )

    async def record(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                data = frame.to_ndarray().reshape(-1)  # type: ignore[union-attr]
                channels = len(frame.layout.channels)  # type: ignore[union-attr]
                self.heard.append(data.reshape(-1, channels)[:, 0].copy())
        except MediaStreamError:
            pass

    def seconds_heard(self) -> float:
        return sum(len(c) for c in self.heard) / RATE

    async def close(self) -> None:
        if self.got in self.client.on_message:
            self.client.on_message.remove(self.got)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.up.close()
        await self.down.close()


def test_file_backend_rejects_what_it_cannot_play(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    from tui.audio import AudioError

    with pytest.raises(AudioError):
        FileBackend(bad, tmp_path / "out.wav")
    with pytest.raises(AudioError):
        open_backend("file:only-one-part")


async def test_tone_goes_both_ways_through_the_server(
    kreis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # All test media stays on loopback (aioice leaves loopback out by default).
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    mic, speaker = tmp_path / "mic.wav", tmp_path / "speaker.wav"
    write_tone(mic, CONSOLE_HZ)
    app = KreisConsole(
        server_url=kreis_server.url,
        group=kreis_server.group,
        lang="en",
        config_path=tmp_path / "console.toml",
        cursor_blink=False,
        audio=f"file:{mic}:{speaker}",
    )
    participant: Participant | None = None
    emil: KreisClient | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await log_in_and_start_room(pilot, app, kreis_server.password)
            await wait_for(pilot, lambda: app.audio is not None and app.audio._started, 20)
            room = app.session.room
            assert room is not None
            assert any(p.get("kind") == "console" for p in room.participants)

            emil, answer = await guest(kreis_server, "Emil")
            assert answer["state"] == "waiting"
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            participant = Participant(emil)
            await pilot.press("1", "a")
            await emil.expect("joined")
            await participant.publish(GUEST_HZ)

            backend = app.audio.backend  # type: ignore[union-attr]
            assert isinstance(backend, FileBackend)
            await wait_for(pilot, lambda: participant.seconds_heard() > 1.5, 30)  # type: ignore[union-attr]
            await wait_for(pilot, lambda: backend.frames_played > 75, 30)
            peak, share = peak_hz(np.concatenate(participant.heard))
            assert abs(peak - CONSOLE_HZ) < 15 and share > 0.5, (peak, share)
    finally:
        if participant is not None:
            await participant.close()
        if emil is not None:
            await emil.close()
    # The app has stopped: the speaker file is complete.
    with wave.open(str(speaker), "rb") as heard:
        pcm = np.frombuffer(heard.readframes(heard.getnframes()), dtype=np.int16)
    assert len(pcm) > RATE
    peak, share = peak_hz(pcm)
    assert abs(peak - GUEST_HZ) < 15 and share > 0.5, (peak, share)


def sound_card_present() -> bool:
    from tui.audio import AudioError, SoundDeviceBackend

    try:
        SoundDeviceBackend()
    except AudioError:
        return False
    return True


@pytest.mark.skipif(sound_card_present(), reason="this machine has a sound card")
async def test_without_a_sound_card_the_console_says_so_and_carries_on(
    kreis_server: Any, tmp_path: Path
) -> None:
    app = KreisConsole(
        server_url=kreis_server.url,
        group=kreis_server.group,
        lang="en",
        config_path=tmp_path / "console.toml",
        cursor_blink=False,
        audio="default",
    )
    async with app.run_test(size=SIZE) as pilot:
        await log_in_and_start_room(pilot, app, kreis_server.password)
        await wait_for(
            pilot, lambda: any("No sound device" in n.message for n in app._notifications)
        )
        assert app.audio is None
        room = app.session.room
        assert room is not None
        hanna, _ = await guest(kreis_server, "Hanna")
        try:
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            await pilot.press("1", "a")
            await hanna.expect("joined")
        finally:
            await hanna.close()
