"""Unit tests of the per-subscriber parts of the SFU, one module each, with the wire
replaced by a list (no connection): the sliding sequence window of a down-track (the
freeze after long meetings), the retransmission budget, pausing until a keyframe, the
reordering window before a NACK, the keyframe parser, the DownLink decisions, and the
temporal layers a subscriber gets (sfu/layers.py): which VP8 packets pass and that
they are numbered without gaps (sequence numbers and picture ids).
"""

from __future__ import annotations

import itertools
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from sfu import downlink, downtrack, uptrack
from sfu.conn import DownTrackInfo, TrackInfo
from sfu.downlink import DownLink
from sfu.downtrack import LinkFeedback, RtpDownTrack
from sfu.keyframe import starts_keyframe
from sfu.layers import LayerGate, vp8_info
from sfu.rtpheader import RtpView
from sfu.stats import Stats
from sfu.uptrack import RtpUpTrack

VP8_KEY = bytes([0x90, 0x80, 0x01, 0x00]) + b"\x9d\x01\x2a"  # X, S; I: picture id; P=0
VP8_DELTA = bytes([0x90, 0x80, 0x02, 0x01]) + b"\x00" * 3  # P=1: a delta frame


class Wire:
    """Stands in for RtpWriter: keeps what would have been sent."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def write_rtp(self, data: bytes) -> bool:
        self.rtp.append(data)
        return True

    def write_rtcp(self, data: bytes) -> bool:
        self.rtcp.append(data)
        return True


def packet(seq: int, payload: bytes = b"x" * 100, ts: int = 0, ssrc: int = 1234) -> RtpView:
    return RtpView(struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, ts, ssrc) + payload)


@pytest.fixture
async def down() -> Any:
    pc = RTCPeerConnection()
    t = pc.addTransceiver("video", direction="sendonly")
    info = DownTrackInfo(mid="0", participant="p", kind="video", source="camera")
    track = RtpDownTrack("s", info, t, Stats())
    track._writer = Wire()  # type: ignore[assignment]
    track._pt_map = {96: 96}
    track._mime = {96: "video/VP8"}
    track._negotiated = True
    yield track
    await pc.close()


def sent_seqs(track: RtpDownTrack) -> list[int]:
    return [struct.unpack_from("!H", d, 2)[0] for d in track._writer.rtp]  # type: ignore[attr-defined]


async def test_a_long_stream_keeps_flowing(down: RtpDownTrack) -> None:
    # 70,000 packets: more than twice 32768. The fixed segment start stopped
    # forwarding after 32768 packets (three minutes of video) for the next 32768.
    start = 60000
    for i in range(70000):
        down.write_rtp(packet(start + i))
    seqs = sent_seqs(down)
    assert len(seqs) == 70000
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    # a packet much older than the newest is still refused (its number may be taken)
    down.write_rtp(packet(start + 70000 - 0x5000))
    assert len(sent_seqs(down)) == 70000


async def test_retransmissions_stay_within_the_budget(down: RtpDownTrack) -> None:
    for i in range(400):
        down.write_rtp(packet(i, b"x" * 1000))
    sent = sent_seqs(down)
    forwarded = sum(len(d) for d in down._writer.rtp)  # type: ignore[attr-defined]
    down._writer.rtp.clear()  # type: ignore[attr-defined]
    down._answer_nack(sent)  # a receiver claims it lost everything
    resent = sum(len(d) for d in down._writer.rtp)  # type: ignore[attr-defined]
    assert 0 < resent <= downtrack.RETX_BURST
    assert resent < 0.25 * forwarded
    assert down._stats.nacks_refused > 0
    # the same packets again right away: nothing (the receiver repeats itself)
    down._writer.rtp.clear()  # type: ignore[attr-defined]
    down._retx_tokens = downtrack.RETX_BURST
    down._answer_nack(sent[:5])
    assert down._writer.rtp == []  # type: ignore[attr-defined]


async def test_old_packets_are_not_resent(down: RtpDownTrack) -> None:
    down.write_rtp(packet(1))
    entry = down._cache[sent_seqs(down)[0] & (downtrack.CACHE_SIZE - 1)]
    assert entry is not None
    seq, data, _ = entry
    down._cache[seq & (downtrack.CACHE_SIZE - 1)] = (seq, data, time.monotonic() - 2)
    down._writer.rtp.clear()  # type: ignore[attr-defined]
    down._answer_nack([seq])
    assert down._writer.rtp == []  # type: ignore[attr-defined]


async def test_a_paused_track_resumes_at_a_keyframe_without_a_gap(down: RtpDownTrack) -> None:
    down.write_rtp(packet(10, VP8_DELTA))
    down.set_paused(True)
    for seq in range(11, 20):
        down.write_rtp(packet(seq, VP8_DELTA))
    assert len(sent_seqs(down)) == 1
    down.probe(1000)  # padding while paused takes sequence numbers (no SR: no publisher)
    probes = len(sent_seqs(down)) - 1
    assert probes >= 4
    down.set_paused(False)
    down.write_rtp(packet(20, VP8_DELTA))  # not a place to start decoding
    down.write_rtp(packet(21, VP8_KEY))
    down.write_rtp(packet(22, VP8_DELTA))  # the rest of the frame and after
    seqs = sent_seqs(down)
    assert len(seqs) == 1 + probes + 2
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


def test_keyframes_are_recognised() -> None:
    assert starts_keyframe("video/VP8", VP8_KEY) is True
    assert starts_keyframe("video/VP8", VP8_DELTA) is False
    assert starts_keyframe("video/VP8", bytes([0x10, 0x00])) is True  # no extension
    assert starts_keyframe("video/VP8", bytes([0x00, 0x00])) is False  # not a start
    assert starts_keyframe("video/H264", bytes([0x65, 0])) is True  # IDR
    assert starts_keyframe("video/H264", bytes([0x7C, 0x85])) is True  # FU-A start, IDR
    assert starts_keyframe("video/H264", bytes([0x41, 0])) is False
    assert starts_keyframe("audio/opus", b"\x00") is None


async def test_a_reordered_packet_is_not_nacked_a_lost_one_is() -> None:
    wire = Wire()
    stats = Stats()
    info = TrackInfo(mid="0", kind="video", source="camera")
    up = RtpUpTrack("p", info, [], {}, wire, 1, stats)  # type: ignore[arg-type]
    for seq in (1, 2, 4, 3, 5):  # 3 comes late, within the window
        up.on_rtp(packet(seq).data)
    time_past = time.monotonic() + uptrack.REORDER_WINDOW * 2
    while time.monotonic() < time_past:
        pass
    up.on_rtp(packet(6).data)
    assert wire.rtcp == [] and stats.late_packets_repaired == 1
    up.on_rtp(packet(8).data)  # 7 is lost
    deadline = time.monotonic() + uptrack.REORDER_WINDOW * 2
    while time.monotonic() < deadline:
        pass
    up.on_rtp(packet(9).data)
    assert len(wire.rtcp) == 1 and stats.nacks_sent_upstream == 1
    up.close()


@dataclass
class FakeUp:
    bitrate: float
    layer_bitrates: tuple[float, ...] = ()


@dataclass
class FakeDown:
    """What DownLink reads and calls on a down-track."""

    kind: str
    up: FakeUp
    feedback: LinkFeedback = field(default_factory=LinkFeedback)
    paused: bool = False
    probes: int = 0
    layer: int = 2

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def set_layer(self, layer: int) -> None:
        self.layer = layer

    def need(self, layer: int | None = None) -> float:
        rates = self.up.layer_bitrates
        top = self.layer if layer is None else layer
        return sum(rates[: top + 1]) if rates else self.up.bitrate

    def probe(self, nbytes: int) -> bool:
        self.probes += 1
        return True


def test_one_weak_link_pauses_its_video_and_a_probe_brings_it_back() -> None:
    stats = Stats()
    link = DownLink()
    videos = [FakeDown("video", FakeUp(1_700_000)) for _ in range(3)]
    audio = FakeDown("audio", FakeUp(40_000))
    tracks: list[Any] = [*videos, audio]
    audio.feedback.rtt = 0.002
    t = 100.0
    link.tick(tracks, stats, t)
    t += downlink.GRACE  # a call starting is not judged
    # a healthy link: the estimate dipped, but stays above half of what it receives
    for f in (v.feedback for v in videos):
        f.remb, f.remb_falls, f.remb_at = 4_000_000, 1, t
    for _ in range(4):
        t += downlink.TICK
        link.tick(tracks, stats, t)
    assert not link.paused
    # capped: the estimate falls to what the link drains, and the link queues
    for f in (v.feedback for v in videos):
        f.remb, f.remb_falls, f.remb_at = 450_000, 2, t
    audio.feedback.rtt = 0.002 + 0.400
    t += downlink.TICK
    link.tick(tracks, stats, t)
    assert not link.paused  # one tick is not enough
    audio.feedback.rtt = 0.002 + 0.450
    t += downlink.TICK
    link.tick(tracks, stats, t)
    assert link.paused and all(v.paused for v in videos) and not audio.paused
    # probes: the first echo shows 160 ms of queueing (still capped), the next 3 ms
    t += downlink.PROBE_EVERY
    link.tick(tracks, stats, t)
    probed = link.probe_track
    assert probed is not None and probed.probes == 1  # type: ignore[attr-defined]
    probed.feedback.probe_rtt = 0.002 + 0.160
    t += downlink.TICK
    link.tick(tracks, stats, t)
    assert link.paused
    t += downlink.PROBE_EVERY
    link.tick(tracks, stats, t)
    probed = link.probe_track
    assert probed is not None
    probed.feedback.probe_rtt = 0.002 + 0.003
    t += downlink.TICK
    link.tick(tracks, stats, t)
    assert not link.paused and not any(v.paused for v in videos)
    assert (stats.video_pauses, stats.video_resumes) == (1, 1)
    # right after the resume the old, low estimate does not pause it again
    for _ in range(10):
        t += downlink.TICK
        link.tick(tracks, stats, t)
    assert not link.paused


def test_a_falling_estimate_without_a_queue_does_not_pause() -> None:
    """Jitter, random loss or a busy browser make Chromium's estimate fall too; only a
    link that also queues (round trips well over its usual minimum) loses its video."""
    stats = Stats()
    link = DownLink()
    videos = [FakeDown("video", FakeUp(1_700_000)) for _ in range(3)]
    audio = FakeDown("audio", FakeUp(40_000))
    tracks: list[Any] = [*videos, audio]
    t = 100.0
    audio.feedback.rtt = 0.030
    link.tick(tracks, stats, t)
    t += downlink.GRACE
    for n in range(10):
        for f in (v.feedback for v in videos):
            f.remb, f.remb_falls, f.remb_at = 300_000, n + 1, t
        audio.feedback.rtt = 0.030 + (0.020 if n % 2 else 0.0)  # jitter, no queue
        t += downlink.TICK
        link.tick(tracks, stats, t)
    assert not link.paused and stats.video_pauses == 0
    for n in range(2):  # now the same estimate with a queue building
        for f in (v.feedback for v in videos):
            f.remb, f.remb_falls, f.remb_at = 300_000, 20 + n, t
        audio.feedback.rtt = 0.030 + 0.300
        t += downlink.TICK
        link.tick(tracks, stats, t)
    assert link.paused and stats.video_pauses == 1


def test_low_rate_cameras_on_a_weak_link_are_paused() -> None:
    """Three cameras a busy machine turned down to 50 kbit/s each (150 in all, under the
    old 200 kbit/s floor) on a link whose estimate for them falls to 60 and queues: the
    video pauses, the voices keep flowing. A call starting is covered by the grace, not
    by a floor: heavy loss in its first seconds pauses nothing."""
    stats = Stats()
    link = DownLink()
    videos = [FakeDown("video", FakeUp(50_000)) for _ in range(3)]
    voices = [FakeDown("audio", FakeUp(40_000)) for _ in range(3)]
    tracks: list[Any] = [*videos, *voices]
    voices[0].feedback.rtt = 0.002
    t = 100.0
    for n in range(int(downlink.GRACE / downlink.TICK)):  # a call starting, lossy
        for f in (v.feedback for v in videos):
            f.remb, f.remb_falls, f.remb_at, f.fraction_lost = 60_000, n + 1, t, 0.5
        link.tick(tracks, stats, t)
        t += downlink.TICK
    assert not link.paused
    for n in range(downlink.STRIKES):
        for f in (v.feedback for v in videos):
            f.remb, f.remb_falls, f.remb_at, f.fraction_lost = 60_000, 10 + n, t, 0.0
        voices[0].feedback.rtt = 0.002 + 0.400
        t += downlink.TICK
        link.tick(tracks, stats, t)
    assert link.paused and all(v.paused for v in videos)
    assert not any(v.paused for v in voices)


def test_probes_nobody_answers_do_not_keep_video_paused_for_good() -> None:
    stats = Stats()
    link = DownLink()
    videos = [FakeDown("video", FakeUp(1_700_000)) for _ in range(2)]
    link._set(videos, True, 0.0)  # type: ignore[arg-type]
    t = 0.0
    while link.paused and t < 60:
        t += downlink.TICK
        link.tick(videos, stats, t)  # type: ignore[arg-type]
    assert not link.paused and stats.probes_sent == downlink.SILENT_PROBES


def test_a_link_a_little_over_gets_fewer_layers_one_far_over_is_paused() -> None:
    """With publishers sending three temporal layers, a link whose estimate falls a
    little under what it is sent (and queues) gets one layer fewer at a time and all of
    them again after LAYER_RETRY; one that falls far under is paused as before."""
    stats = Stats()
    link = DownLink()
    # Layer 0 carries about half the bits (measured with Chromium): 1.65, 1.95, 3 Mbit/s
    layers = (550_000.0, 100_000.0, 350_000.0)
    videos = [FakeDown("video", FakeUp(sum(layers), layers)) for _ in range(3)]
    audio = FakeDown("audio", FakeUp(40_000))
    tracks: list[Any] = [*videos, audio]
    audio.feedback.rtt = 0.002
    t = 100.0
    link.tick(tracks, stats, t)

    def estimate(bits: int, queue: float = 0.400) -> None:
        nonlocal t
        for _ in range(downlink.STRIKES):
            for f in (v.feedback for v in videos):
                f.remb, f.remb_falls, f.remb_at = bits, f.remb_falls + 1, t
            audio.feedback.rtt = 0.002 + queue
            t += downlink.TICK
            link.tick(tracks, stats, t)
        audio.feedback.rtt = 0.002

    t += downlink.GRACE
    estimate(2_000_000, queue=0.010)  # under 80 %, but no queue: jitter, not a weak link
    assert link.layer == 2 and stats.layer_downs == 0
    estimate(2_000_000)  # 67 % of 3 Mbit/s, queueing
    assert link.layer == 1 and not link.paused and all(v.layer == 1 for v in videos)
    t += downlink.GRACE
    estimate(1_550_000)  # 79 % of the 1.95 Mbit/s it now gets
    assert link.layer == 0 and all(v.layer == 0 for v in videos)
    t += downlink.GRACE
    estimate(1_550_000)  # layer 0 is the least there is, and 52 % of 3 Mbit/s no pause
    assert link.layer == 0 and not link.paused and stats.layer_downs == 2
    t += downlink.LAYER_RETRY
    link.tick(tracks, stats, t)
    assert link.layer == 2 and all(v.layer == 2 for v in videos)
    t += downlink.GRACE
    estimate(1_000_000)  # 33 %: far over, paused at once
    assert link.paused and all(v.paused for v in videos) and not audio.paused
    assert stats.layer_downs == 2 and stats.video_pauses == 1


def test_fewer_frames_asked_for_hold_whatever_the_link() -> None:
    """`receive` with fewer_frames: layer 0 only, also when the link would carry all."""
    stats = Stats()
    link = DownLink()
    layers = (550_000.0, 100_000.0, 350_000.0)
    videos = [FakeDown("video", FakeUp(sum(layers), layers)) for _ in range(2)]
    link.cap = 0
    link.tick(videos, stats, 100.0)  # type: ignore[arg-type]
    assert all(v.layer == 0 for v in videos)
    link.tick(videos, stats, 100.0 + downlink.LAYER_RETRY + 1)  # type: ignore[arg-type]
    assert all(v.layer == 0 for v in videos)
    link.cap = 2
    link.tick(videos, stats, 200.0)  # type: ignore[arg-type]
    assert all(v.layer == 2 for v in videos)


PATTERN = (0, 2, 1, 2)
"""L1T3: the temporal layer of frames 0, 1, 2, 3, then again."""


def vp8(pid: int, tid: int, first: bool, key: bool = False) -> bytes:
    """A VP8 payload with a full descriptor: 15-bit picture id, TL0PICIDX, TID."""
    head = bytes([0x90 if first else 0x80, 0xE0, 0x80 | (pid >> 8) & 0x7F, pid & 0xFF, 7])
    head += bytes([tid << 6])
    return head + bytes([0x00 if key else 0x01]) + b"v" * 60


def frames(start: int, count: int, key_at: int = -1) -> list[tuple[int, int, bytes]]:
    """(seq, pid, packet) for count frames of two packets each, from frame start."""
    out = []
    for f in range(start, start + count):
        tid = PATTERN[f % 4]
        for part in range(2):
            seq = 2 * f + part
            payload = vp8(100 + f, tid, part == 0, key=f == key_at)
            header = struct.pack("!BBHII", 0x80, 96, seq, 3000 * f, 77)
            out.append((seq, 100 + f, header + payload))
    return out


def feed(track: RtpDownTrack, packets: list[tuple[int, int, bytes]]) -> None:
    for _, _, data in packets:
        view = RtpView(data)
        view.vp8 = vp8_info(data[view.payload_offset :])
        track.write_rtp(view)


def sent(track: RtpDownTrack) -> list[tuple[int, int, int]]:
    """(seq, picture id, tid) of what went out."""
    out = []
    for data in track._writer.rtp:  # type: ignore[attr-defined]
        info = vp8_info(data[12:])
        assert info is not None
        out.append((struct.unpack_from("!H", data, 2)[0], info[1], info[0]))
    return out


def test_the_descriptor_is_read() -> None:
    assert vp8_info(vp8(0x1234, 2, True, key=True)) == (2, 0x1234, 2, 0x7FFF, True, True)
    assert vp8_info(vp8(5, 1, False)) == (1, 5, 2, 0x7FFF, False, False)
    assert vp8_info(bytes([0x10, 0x9D])) == (-1, -1, 0, 0, True, False)  # no X: no layers
    assert vp8_info(bytes([0x90, 0x80])) is None  # picture id announced, missing
    assert vp8_info(b"") is None


async def test_fewer_layers_leave_no_gaps_in_numbers(down: RtpDownTrack) -> None:
    feed(down, frames(0, 4))
    down.set_layer(0)
    feed(down, frames(4, 8))
    out = sent(down)
    assert [tid for _, _, tid in out] == [0, 0, 2, 2, 1, 1, 2, 2] + [0, 0] * 2
    seqs = [s for s, _, _ in out]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # continuous
    pids = [p for _, p, _ in out]
    first = pids[0]
    # whole frames: the two packets of a frame share an id, ids go up by one per frame
    assert pids == [first + i // 2 for i in range(len(pids))]
    assert down._stats.layer_dropped_packets == 12


async def test_more_layers_start_at_a_keyframe(down: RtpDownTrack) -> None:
    down.set_layer(1)
    feed(down, frames(0, 8))
    assert {tid for _, _, tid in sent(down)} == {0, 1}
    down.set_layer(2)
    feed(down, frames(8, 4))  # no keyframe yet: still without layer 2
    assert {tid for _, _, tid in sent(down)} == {0, 1}
    feed(down, frames(12, 4, key_at=12))
    out = sent(down)
    assert [tid for _, _, tid in out[-8:]] == [0, 0, 2, 2, 1, 1, 2, 2]
    seqs = [s for s, _, _ in out]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    pids = sorted({p for _, p, _ in out})
    assert pids == list(range(pids[0], pids[0] + len(pids)))


def test_a_late_packet_keeps_the_number_it_would_have_had() -> None:
    gate = LayerGate()
    gate.wanted = 0
    packets = frames(0, 8)
    late = packets.pop(1)  # the second packet of frame 0 (layer 0) comes after frame 1
    packets.insert(3, late)
    numbered = []
    for seq, _, data in packets:
        view = RtpView(data)
        info = vp8_info(data[view.payload_offset :])
        assert info is not None
        if gate.admit(seq, info):
            numbered.append((seq, seq - gate.shift_for(seq)))
    assert sorted(n for _, n in numbered) == list(range(len(numbered)))
    assert (1, 1) in numbered  # the late one: frame 1's two packets were left out after it
