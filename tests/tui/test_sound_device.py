"""The console's real sound-card backend, through PortAudio and ALSA, without a sound card.

CI machines have no sound card, so the end-to-end console audio test uses the
file-backed stand-in. This test covers the part that stand-in skips: the
`SoundDeviceBackend` itself (`sounddevice` → PortAudio → ALSA). ALSA's `file` plugin
gives a virtual device whose capture side reads a raw 440 Hz tone from a file and whose
playback side writes into another file; an `asym` device puts the two together, as a
headset would be. The backend must deliver the 440 Hz tone as microphone frames and
its played 1000 Hz frames must land in the output file, both measured with an FFT.

ALSA reads its configuration when PortAudio starts, so the backend runs in a child
process whose HOME holds the `.asoundrc`. The `null` slave has no clock: the device
runs as fast as the CPU allows, so the child stops after a fixed number of frames.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.tui

ROOT = Path(__file__).resolve().parents[2]
RATE = 48000
MIC_HZ = 440.0
SPEAKER_HZ = 1000.0
FRAMES = 150

ASOUNDRC = """
pcm.kreis_mic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{mic}"
    format "raw"
}}
pcm.kreis_speaker {{
    type file
    slave.pcm "null"
    file "{speaker}"
    format "raw"
}}
pcm.kreistest {{
    type asym
    capture.pcm "kreis_mic"
    playback.pcm "kreis_speaker"
    hint {{ show on description "Kreis test headset" }}
}}
"""

CHILD = """
import asyncio, json, sys
import numpy as np
from tui.audio import SoundDeviceBackend, FRAME_SAMPLES, SAMPLE_RATE

async def main() -> None:
    backend = SoundDeviceBackend(sys.argv[1])
    t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
    tone = (np.sin(2 * np.pi * float(sys.argv[2]) * t) * 9000).astype(np.int16)
    await backend.start()
    heard = []
    try:
        for _ in range(int(sys.argv[3])):
            heard.append(await asyncio.wait_for(backend.read_frame(), 5))
            backend.play(tone)
    finally:
        await backend.stop()
        await backend.stop()  # safe twice
    np.concatenate(heard).astype("<i2").tofile(sys.argv[4])
    print(json.dumps({"frames": len(heard), "sizes": sorted({len(f) for f in heard})}))

asyncio.run(main())
"""


def peak(pcm: np.ndarray) -> tuple[float, float]:
    """(strongest frequency, share of energy within ±50 Hz of it)."""
    x = pcm.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / RATE)
    top = float(freqs[int(np.argmax(spectrum))])
    near = spectrum[np.abs(freqs - top) <= 50].sum()
    return top, float(near / spectrum.sum())


def test_sound_device_backend_through_portaudio_and_alsa(tmp_path: Path) -> None:
    pytest.importorskip("sounddevice", reason="the audio extra is not installed")
    mic = tmp_path / "mic.raw"
    speaker = tmp_path / "speaker.raw"
    heard = tmp_path / "heard.raw"
    t = np.arange(RATE * 2) / RATE
    (np.sin(2 * math.pi * MIC_HZ * t) * 9000).astype("<i2").tofile(mic)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(ASOUNDRC.format(mic=mic, speaker=speaker))
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, "kreistest", str(SPEAKER_HZ), str(FRAMES), str(heard)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"frames": FRAMES, "sizes": [RATE // 50]}, report

    mic_pcm = np.fromfile(heard, dtype="<i2")
    top, share = peak(mic_pcm)
    assert abs(top - MIC_HZ) < 15 and share > 0.5, ("microphone", top, share)

    played = np.fromfile(speaker, dtype="<i2")
    # Untimed device: the speaker callback pads with silence whenever no frame is
    # queued, so count the tone where it is, not across the padding.
    frames = played[: len(played) // (RATE // 50) * (RATE // 50)].reshape(-1, RATE // 50)
    loud = frames[np.abs(frames).max(axis=1) > 1000]
    assert len(loud) >= 10, ("played frames with sound", len(loud), len(frames))
    top, share = peak(loud.reshape(-1)[: RATE // 2])
    assert abs(top - SPEAKER_HZ) < 15 and share > 0.5, ("speaker", top, share)


def test_unknown_sound_device_is_an_audio_error() -> None:
    pytest.importorskip("sounddevice", reason="the audio extra is not installed")
    from tui.audio import AudioError, SoundDeviceBackend

    with pytest.raises(AudioError):
        SoundDeviceBackend("no-such-device-kreis")
