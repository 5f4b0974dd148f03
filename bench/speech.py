"""A speech-like test signal for Chromium's fake microphone.

Chromium's own fake microphone sends a short beep twice a second and digital silence in
between. Opus codes that silence in its CELT mode, which has no in-band FEC, so under
loss a beep measures concealment without the protection every voice gets (bench.network
measured 7.7 % concealed at 10 % loss with the beep, about 2 % with this signal, same
build). People talk: this is a crude artificial voice in the spirit of ITU-T P.50,
syllables of 120 to 280 ms: voiced ones (a glottal pulse train at 100 to 190 Hz through
three vowel formants), unvoiced ones (noise around 4.5 kHz) and short pauses. Chromium
plays the file in a loop (`--use-file-for-fake-audio-capture`).

    speech_wav(directory)  → the path of a 12 s, 48 kHz mono WAV written there
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

RATE = 48_000
SECONDS = 12
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480))
"""Formant frequencies (Hz) of a, i, u, e."""


def _resonate(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    """A two-pole resonator (one formant)."""
    r = math.exp(-math.pi * bandwidth / RATE)
    c1, c2 = 2 * r * math.cos(2 * math.pi * freq / RATE), -r * r
    out = np.empty_like(x)
    y1 = y2 = 0.0
    for i, v in enumerate(x.tolist()):
        y0 = v + c1 * y1 + c2 * y2
        out[i] = y0
        y2, y1 = y1, y0
    return out


def _syllable(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.random()
    if kind < 0.12:
        return np.zeros(n)  # a pause
    if kind < 0.25:
        return _resonate(rng.normal(0.0, 0.3, n), 4500, 2000) * 0.05  # a fricative
    f0, f1 = rng.uniform(100, 190), rng.uniform(90, 200)
    phase = np.cumsum(np.linspace(f0, f1, n) / RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # one pulse per glottal period
    formants = VOWELS[int(rng.integers(len(VOWELS)))]
    voiced = sum(_resonate(pulses, f, 80 + 40 * k) / (k + 1) for k, f in enumerate(formants))
    voiced = voiced * np.sin(np.linspace(0, math.pi, n)) ** 0.6
    peak = float(np.max(np.abs(voiced))) or 1.0
    return np.asarray(voiced / peak * 0.5)


def speech_wav(directory: Path) -> Path:
    """Writes the signal to directory/speech.wav and returns its path."""
    rng = np.random.default_rng(7)
    total = RATE * SECONDS
    parts: list[np.ndarray] = []
    length = 0
    while length < total:
        n = int(RATE * rng.uniform(0.12, 0.28))
        parts.append(_syllable(rng, n))
        length += n
    signal = np.concatenate(parts)[:total]
    pcm = (np.clip(signal, -1.0, 1.0) * 32000).astype("<i2")
    path = directory / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path
