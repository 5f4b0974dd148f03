"""PCM plumbing of one call: prompts, the waiting tone, the room mix and the caller's voice.

All audio inside the gateway is 16 kHz, mono, signed 16-bit, in 20 ms frames of 320
samples: the rate of pjmedia's conference bridge (G.722 natively; G.711 is resampled by
pjmedia). `CallAudio` is shared between asyncio and pjmedia's clock thread, so its
state sits behind one lock and its callbacks never block.

Nothing from the room is ever fed to a caller before admission: the room mix is
attached as the call's background only after `joined` (see `sipgw.session`).
"""

from __future__ import annotations

import threading
import wave
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from sipgw.errors import PromptError

RATE = 16000
FRAME_SAMPLES = 320
"""20 ms at 16 kHz."""

Pcm = np.ndarray
"""A 1-D int16 array at 16 kHz."""


class Source(Protocol):
    """A continuous sound read frame by frame on the media thread."""

    def read(self, samples: int) -> Pcm | None: ...


def load_wav(path: Path) -> Pcm:
    """Reads a 16 kHz, mono, 16-bit PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
                raise PromptError(f"{path.name} must be 16 kHz mono 16-bit PCM")
            data = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise PromptError(f"cannot read prompt {path.name}: {exc}") from None
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


class WaitingTone:
    """A soft two-note chime every few seconds, for callers waiting in the lobby.

    C5 and E5 (523 and 659 Hz) at about -22 dBFS: clearly "still connected", far from
    the test tones (440 Hz, 1 kHz), and gentle enough to wait through.
    """

    def __init__(self, period_s: float = 4.0, level: float = 0.08) -> None:
        note = int(0.35 * RATE)
        t = np.arange(note) / RATE
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)
        first = np.sin(2 * np.pi * 523.25 * t) * fade
        second = np.sin(2 * np.pi * 659.25 * t) * fade
        pause = np.zeros(int(0.05 * RATE))
        chime = np.concatenate([first, pause, second])
        cycle = np.zeros(int(period_s * RATE))
        cycle[: len(chime)] = chime
        self._cycle = (cycle * level * 32767).astype(np.int16)
        self._pos = 0

    def read(self, samples: int) -> Pcm:
        idx = (np.arange(samples) + self._pos) % len(self._cycle)
        self._pos = (self._pos + samples) % len(self._cycle)
        return self._cycle[idx]


class RoomMix:
    """The room's voices mixed for one caller: one small jitter buffer per remote track.

    `push` is called from asyncio with decoded 16 kHz PCM of one track; `read` runs on
    the media thread and sums whatever each track has ready. A track starts playing
    once it has `prebuffer` samples, and old samples are dropped beyond `max_buffer` so
    that the delay cannot creep up.
    """

    def __init__(self, prebuffer_ms: int = 40, max_buffer_ms: int = 200) -> None:
        self._lock = threading.Lock()
        self._tracks: dict[str, deque[Pcm]] = {}
        self._sizes: dict[str, int] = {}
        self._playing: dict[str, bool] = {}
        self._prebuffer = prebuffer_ms * RATE // 1000
        self._max = max_buffer_ms * RATE // 1000
        self.excluded: set[str] = set()
        """Track keys never mixed (the caller's own participant id)."""

    def push(self, track: str, pcm: Pcm) -> None:
        if any(track.startswith(own) for own in self.excluded):
            return
        with self._lock:
            buf = self._tracks.setdefault(track, deque())
            buf.append(pcm)
            size = self._sizes.get(track, 0) + len(pcm)
            while size > self._max and len(buf) > 1:
                size -= len(buf.popleft())
            self._sizes[track] = size

    def remove(self, track: str) -> None:
        with self._lock:
            self._tracks.pop(track, None)
            self._sizes.pop(track, None)
            self._playing.pop(track, None)

    def _take(self, track: str, samples: int) -> Pcm | None:
        size = self._sizes.get(track, 0)
        if not self._playing.get(track):
            if size < self._prebuffer:
                return None
            self._playing[track] = True
        if size < samples:
            self._playing[track] = False  # underrun: buffer again before playing on
            return None
        buf = self._tracks[track]
        parts: list[Pcm] = []
        need = samples
        while need:
            head = buf[0]
            if len(head) <= need:
                parts.append(buf.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                buf[0] = head[need:]
                need = 0
        self._sizes[track] = size - samples
        return np.concatenate(parts)

    def read(self, samples: int) -> Pcm | None:
        with self._lock:
            frames = [f for t in list(self._tracks) if (f := self._take(t, samples)) is not None]
        if not frames:
            return None
        total = np.sum(np.stack(frames).astype(np.int32), axis=0)
        mixed: Pcm = np.clip(total, -32768, 32767).astype(np.int16)
        return mixed


class CallAudio:
    """What one call hears (prompts over a background) and where its voice goes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prompts: deque[tuple[Pcm, Callable[[], None] | None]] = deque()
        self._pos = 0
        self._background: Source | None = None
        self._sink: Callable[[Pcm], None] | None = None
        self.muted = False
        self.closed = False

    # ---------------------------------------------------------------- to the caller

    def play(self, pcm: Pcm, done: Callable[[], None] | None = None) -> None:
        """Queues a prompt; `done` is called (on the media thread) when it has played."""
        with self._lock:
            self._prompts.append((pcm, done))

    def stop_prompts(self) -> None:
        """Cuts the current and queued prompts short (the caller started typing)."""
        with self._lock:
            dropped = list(self._prompts)
            self._prompts.clear()
            self._pos = 0
        for _, done in dropped:
            if done is not None:
                done()

    def set_background(self, source: Source | None) -> None:
        with self._lock:
            self._background = source

    def next_frame(self) -> bytes:
        """One 20 ms frame for the caller: the current prompt plus the background."""
        finished: Callable[[], None] | None = None
        with self._lock:
            out = np.zeros(FRAME_SAMPLES, dtype=np.int32)
            if self._prompts:
                pcm, done = self._prompts[0]
                chunk = pcm[self._pos : self._pos + FRAME_SAMPLES]
                out[: len(chunk)] += chunk
                self._pos += FRAME_SAMPLES
                if self._pos >= len(pcm):
                    self._prompts.popleft()
                    self._pos = 0
                    finished = done
            background = self._background
        if background is not None:
            extra = background.read(FRAME_SAMPLES)
            if extra is not None:
                out += extra
        if finished is not None:
            finished()
        return np.clip(out, -32768, 32767).astype("<i2").tobytes()

    # ---------------------------------------------------------------- from the caller

    def set_sink(self, sink: Callable[[Pcm], None] | None) -> None:
        """Where the caller's voice goes (None: nowhere, e.g. before admission)."""
        with self._lock:
            self._sink = sink

    def wants_caller_audio(self) -> bool:
        return self._sink is not None and not self.closed

    def caller_frame(self, pcm: Pcm) -> None:
        sink = self._sink
        if sink is None:
            return
        sink(np.zeros_like(pcm) if self.muted else pcm)

    def close(self) -> None:
        """The call ended: drop everything and release waiters."""
        self.closed = True
        self.set_background(None)
        self.set_sink(None)
        self.stop_prompts()
