"""Header parsing/rewriting and the RTCP the SFU writes, checked against aiortc's parser."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import RtcpPacket, RtpPacket, unpack_remb_fci

from sfu import rtcp
from sfu.rtpheader import RtpView, build_extensions, build_packet, seq_newer


def packet_with(ext_block: bytes, csrcs: list[int], padding: int = 0) -> bytes:
    b0 = 0x80 | (0x10 if ext_block else 0) | len(csrcs) | (0x20 if padding else 0)
    head = struct.pack("!BBHII", b0, 0x80 | 100, 65535, 0xFFFFFFF0, 0xAABBCCDD)
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    payload = b"payload-bytes"
    pad = b"\x00" * (padding - 1) + bytes([padding]) if padding else b""
    return head + ext_block + payload + pad


def one_byte_block(elements: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


def test_view_reads_fields_and_extensions() -> None:
    data = packet_with(one_byte_block([(1, b"0"), (3, b"\x01\x02\x03")]), [7, 8])
    view = RtpView(data)
    assert (view.payload_type, view.marker, view.sequence_number) == (100, 0x80, 65535)
    assert (view.timestamp, view.ssrc) == (0xFFFFFFF0, 0xAABBCCDD)
    assert view.extensions == [(1, b"0"), (3, b"\x01\x02\x03")]
    assert data[view.payload_offset :].startswith(b"payload-bytes")


def test_two_byte_extensions_are_read() -> None:
    body = bytes([5, 2, 0xAA, 0xBB])
    data = packet_with(struct.pack("!HH", 0x1000, 1) + body, [])
    assert RtpView(data).extensions == [(5, b"\xaa\xbb")]


@pytest.mark.parametrize("bad", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 11])
def test_view_refuses_garbage(bad: bytes) -> None:
    with pytest.raises(ValueError):
        RtpView(bad)


def test_rewrite_maps_ids_drops_unknown_and_keeps_csrc_payload_padding() -> None:
    data = packet_with(one_byte_block([(1, b"0"), (3, b"\x01\x02\x03"), (9, b"x")]), [7], 4)
    view = RtpView(data)
    ext = build_extensions(view.extensions, {3: 2})
    out = build_packet(view, 96, 12, 345, 0x01020304, ext)
    parsed = RtpPacket.parse(out)
    assert (parsed.payload_type, parsed.marker, parsed.sequence_number) == (96, 1, 12)
    assert (parsed.timestamp, parsed.ssrc, parsed.csrc) == (345, 0x01020304, [7])
    assert parsed.payload == b"payload-bytes" and parsed.padding_size == 4
    assert RtpView(out).extensions == [(2, b"\x01\x02\x03")]


def test_rewrite_without_remaining_extensions_clears_the_x_bit() -> None:
    view = RtpView(packet_with(one_byte_block([(1, b"0")]), []))
    out = build_packet(view, 96, 1, 2, 3, build_extensions(view.extensions, {}))
    assert out[0] & 0x10 == 0 and RtpPacket.parse(out).payload == b"payload-bytes"


def test_seq_newer_wraps() -> None:
    assert seq_newer(1, 65535) and not seq_newer(65535, 1) and not seq_newer(5, 5)


def test_rtcp_packets_parse_in_aiortc() -> None:
    (nack,) = RtcpPacket.parse(rtcp.nack(1, 2, [65534, 65535, 0, 3, 40]))
    assert sorted(nack.lost) == [0, 3, 40, 65534, 65535]
    (pli,) = RtcpPacket.parse(rtcp.pli(1, 2))
    assert (pli.fmt, pli.ssrc, pli.media_ssrc) == (1, 1, 2)
    (remb,) = RtcpPacket.parse(rtcp.remb(1, 2_500_000, [9]))
    bitrate, ssrcs = unpack_remb_fci(remb.fci)
    assert abs(bitrate - 2_500_000) < 2_500_000 / 1000 and ssrcs == [9]
    sr, sdes = RtcpPacket.parse(rtcp.sender_report(5, 7 << 32, 0x1_0000_0009, 3, 4, "c"))
    info = sr.sender_info
    assert (sr.ssrc, info.ntp_timestamp, info.rtp_timestamp) == (5, 7 << 32, 9)
    assert (info.packet_count, info.octet_count) == (3, 4)
    assert sdes.chunks[0].items == [(1, b"c")]


def test_msid_token_keeps_sdp_valid() -> None:
    from sfu.peer import msid_token

    assert msid_token("p_a1B2-c.3") == "p_a1B2-c.3"
    odd = msid_token("name with spaces/ä" * 5)
    assert odd.isalnum() and len(odd) <= 40 and odd == msid_token("name with spaces/ä" * 5)
