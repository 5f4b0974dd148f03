"""What every benchmark measures the same way: CPU and memory of a process tree from
/proc, percentiles, and the synthetic media that light publishers send.

The media is shaped like a camera and a microphone: Opus at 50 packets/s of ~100
bytes, VP8 at 30 frames/s of a few ~900-byte packets with a big keyframe every two
seconds. Each payload carries the sender's CLOCK_MONOTONIC time (shared by all
processes of the machine), so a subscriber can tell how long a packet took.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

AUDIO_PPS = 50
VIDEO_FPS = 30
VIDEO_PACKETS_PER_FRAME = 4
KEYFRAME_EVERY = 60
"""Frames between keyframes (two seconds at 30 fps)."""
KEYFRAME_PACKETS = 30
AUDIO_BYTES = 100
VIDEO_BYTES = 900
KEYFRAME_BYTES = 1100

_STAMP = struct.Struct("!dI")
"""Payload head after the codec byte: send time (monotonic seconds), publisher number."""


def video_pps() -> float:
    """Average video packets per second of one publisher."""
    per_cycle = (KEYFRAME_EVERY - 1) * VIDEO_PACKETS_PER_FRAME + KEYFRAME_PACKETS
    return per_cycle / KEYFRAME_EVERY * VIDEO_FPS


# --- processes ---------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return kids


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (SFU workers are children of the server)."""
    out = [pid]
    i = 0
    while i < len(out):
        out.extend(_children(out[i]))
        i += 1
    return out


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """user+system CPU seconds used so far by pid (and its descendants)."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def runqueue_wait_seconds(pid: int, tree: bool = True) -> float:
    """Seconds pid (and its descendants) spent runnable but waiting for a CPU: how much
    the rest of a shared machine delayed it (/proc/<pid>/schedstat, all threads)."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[1])
        except OSError:
            continue
    return total / 1e9


def rss_bytes(pid: int, tree: bool = True) -> int:
    """Resident memory of pid (and its descendants)."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


def quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


# --- synthetic media ---------------------------------------------------------------


def rtp_packet(
    pt: int, seq: int, ts: int, ssrc: int, marker: bool, payload: bytes, ext: bytes = b""
) -> bytes:
    """An RTP packet; ext is a complete header-extension block (profile, length, body)."""
    b0 = 0x90 if ext else 0x80
    head = struct.pack("!BBHII", b0, pt | (0x80 if marker else 0), seq, ts, ssrc)
    return head + ext + payload


def extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A one-byte-header extension block (RFC 8285) as browsers send it."""
    body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
    body += bytes(-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


def stamped(codec_byte: int, publisher: int, size: int) -> bytes:
    body = bytes([codec_byte]) + _STAMP.pack(time.monotonic(), publisher)
    return body + bytes(max(0, size - len(body)))


def payload_offset(data: bytes) -> int:
    b0 = data[0]
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        off += 4 + 4 * int.from_bytes(data[off + 2 : off + 4], "big")
    return off


@dataclass
class Receipts:
    """What the subscribers of one client process received."""

    packets: int = 0
    """Every packet received."""
    window_packets: int = 0
    """Packets sent inside the measuring window (by their embedded send time)."""
    window_start: float = math.inf
    window_end: float = math.inf
    latencies: list[float] = field(default_factory=list)
    """Ages on arrival of the window's packets, in seconds."""

    def sink(self, data: bytes) -> None:
        """Counts one decrypted RTP packet; times it when it was sent in the window."""
        self.packets += 1
        sent, _publisher = _STAMP.unpack_from(data, payload_offset(data) + 1)
        if self.window_start <= sent < self.window_end:
            self.window_packets += 1
            self.latencies.append(time.monotonic() - sent)


Send = Callable[[bytes], object]


@dataclass
class Stream:
    """One publisher's two streams and where their packets go."""

    number: int
    send_audio: Send
    send_video: Send
    audio_pt: int = 111
    video_pt: int = 96
    audio_ssrc: int = 1
    video_ssrc: int = 2
    audio_ext: bytes = b""
    """Header extensions on every audio packet (mid, audio level: as a browser)."""
    video_ext: bytes = b""
    """Header extensions on every video packet (mid, abs-send-time)."""
    phase: float = 0.0
    _aseq: int = 0
    _vseq: int = 0
    _frames: int = 0
    _audio_due: float = 0.0
    _video_due: float = 0.0

    def start(self, now: float) -> None:
        self._audio_due = now + self.phase / AUDIO_PPS
        self._video_due = now + self.phase / VIDEO_FPS
        # Browsers' keyframes are independent of each other. Starting every stream's
        # keyframe cycle at frame 0 would send all publishers' keyframes within the
        # same 33 ms every two seconds, a synchronised burst no real room produces;
        # the phase spreads them over the cycle.
        self._frames = round(self.phase * KEYFRAME_EVERY) % KEYFRAME_EVERY

    def pump(self, now: float) -> int:
        """Sends every packet that is due by now; returns how many."""
        sent = 0
        while self._audio_due <= now:
            self._aseq = (self._aseq + 1) & 0xFFFF
            ts = (self._aseq * 960) & 0xFFFFFFFF
            payload = stamped(0xFC, self.number, AUDIO_BYTES)
            self.send_audio(
                rtp_packet(
                    self.audio_pt, self._aseq, ts, self.audio_ssrc, False, payload, self.audio_ext
                )
            )
            self._audio_due += 1 / AUDIO_PPS
            sent += 1
        while self._video_due <= now:
            key = self._frames % KEYFRAME_EVERY == 0
            count, size = (
                (KEYFRAME_PACKETS, KEYFRAME_BYTES)
                if key
                else (
                    VIDEO_PACKETS_PER_FRAME,
                    VIDEO_BYTES,
                )
            )
            ts = (self._frames * 3000) & 0xFFFFFFFF
            for i in range(count):
                self._vseq = (self._vseq + 1) & 0xFFFF
                payload = stamped(0x10 if i == 0 else 0x00, self.number, size)
                self.send_video(
                    rtp_packet(
                        self.video_pt,
                        self._vseq,
                        ts,
                        self.video_ssrc,
                        i == count - 1,
                        payload,
                        self.video_ext,
                    )
                )
            self._frames += 1
            self._video_due += 1 / VIDEO_FPS
            sent += count
        return sent
