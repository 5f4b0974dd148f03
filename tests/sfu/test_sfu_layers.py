"""Unit tests of sfu/layers.py: which VP8 packets a subscriber with fewer temporal
layers gets, and that what it gets is numbered without gaps (sequence numbers and
picture ids), through a real RtpDownTrack with the wire replaced by a list."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from sfu.conn import DownTrackInfo
from sfu.downtrack import RtpDownTrack
from sfu.layers import LayerGate, vp8_info
from sfu.rtpheader import RtpView
from sfu.stats import Stats

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


@pytest.fixture
async def down() -> Any:
    class Wire:
        def __init__(self) -> None:
            self.rtp: list[bytes] = []

        def write_rtp(self, data: bytes) -> bool:
            self.rtp.append(data)
            return True

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
