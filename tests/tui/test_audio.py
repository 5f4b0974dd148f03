"""Listening and talking from the console, end to end through a real server.

The console runs with `--audio file:MIC.wav:SPEAKER.wav` (the file-backed stand-in for
the sound card). A browser-like aiortc participant in the room sends a 1000 Hz tone
and a camera, and records what it receives; the console must take the tone and refuse
the camera (it shows no video, so it asks the server for audio only). The
console's 440 Hz "microphone" must reach the participant, and the participant's tone
must reach the console's speaker file; both are measured at their frequency with an
FFT.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
import pytest
from test_console_flow import SIZE, guest, log_in_and_start_room, wait_for

from app.client import KreisClient
from app.participant import PatternTrack, RoomParticipant, mono, tone_track
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


class Guest:
    """A browser-like participant: a tone as microphone, a test pattern as camera, and
    a record of what it hears (the shared app.participant.RoomParticipant)."""

    def __init__(self, client: KreisClient) -> None:
        self.client = client
        self.heard: list[np.ndarray] = []
        self.media = RoomParticipant(
            client, audio_only=True, on_audio=lambda _s, f: self.heard.append(mono(f))
        )

    async def publish(self, hz: float) -> None:
        await self.media.publish([(tone_track(hz), "mic"), (PatternTrack(), "camera")])
        await self.client.send(
            {"type": "media_state", "mic": True, "camera": True, "screen": False}
        )

    def seconds_heard(self) -> float:
        return sum(len(c) for c in self.heard) / RATE


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
    participant: Guest | None = None
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
            participant = Guest(emil)
            await participant.media.start()
            await pilot.press("1", "a")
            await emil.expect("joined")
            await participant.publish(GUEST_HZ)

            backend = app.audio.backend  # type: ignore[union-attr]
            assert isinstance(backend, FileBackend)
            await wait_for(pilot, lambda: participant.seconds_heard() > 1.5, 30)  # type: ignore[union-attr]
            await wait_for(pilot, lambda: backend.frames_played > 75, 30)
            peak, share = peak_hz(np.concatenate(participant.heard))
            assert abs(peak - CONSOLE_HZ) < 15 and share > 0.5, (peak, share)
            # The console shows no video and said so (`receive`): the guest's camera
            # is not even offered to it (tests/tui/test_audio_only.py: memory).
            down = app.audio.media.down  # type: ignore[union-attr]
            assert down is not None and down.remoteDescription is not None
            assert "m=audio" in down.remoteDescription.sdp
            assert "m=video" not in down.remoteDescription.sdp
    finally:
        if participant is not None:
            await participant.media.close()
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
