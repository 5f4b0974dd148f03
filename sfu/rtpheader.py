"""RTP header parsing and rewriting on raw bytes (RFC 3550, RFC 8285).

The SFU never parses or rebuilds a whole packet: it reads the fixed header with one
struct call, splits the header extension block into elements, and builds a new
header in front of the untouched payload (and padding) for each subscriber.
"""

from __future__ import annotations

import struct

Vp8Info = tuple[int, int, int, int, bool, bool]
"""VP8 payload descriptor fields (sfu.layers.vp8_info): temporal layer id or -1,
picture id or -1, its offset in the payload, its mask, first packet of a frame,
keyframe start."""

_FIXED = struct.Struct("!BBHII")
_EXT_HEAD = struct.Struct("!HH")
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000


class RtpView:
    """Header fields of one incoming RTP packet; the payload stays in data."""

    __slots__ = (
        "data",
        "extensions",
        "marker",
        "payload_offset",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
        "vp8",
    )

    def __init__(self, data: bytes) -> None:
        """Parses data; raises ValueError when it is not a usable RTP packet."""
        if len(data) < 12:
            raise ValueError("RTP packet too short")
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
        if b0 >> 6 != 2:
            raise ValueError("not RTP version 2")
        offset = 12 + 4 * (b0 & 0x0F)
        extensions: list[tuple[int, bytes]] = []
        if b0 & 0x10:
            if len(data) < offset + 4:
                raise ValueError("RTP header extension truncated")
            profile, words = _EXT_HEAD.unpack_from(data, offset)
            start = offset + 4
            offset = start + 4 * words
            if len(data) < offset:
                raise ValueError("RTP header extension truncated")
            extensions = _split_extensions(profile, data[start:offset])
        if len(data) < offset:
            raise ValueError("RTP header truncated")
        self.data = data
        self.payload_type = b1 & 0x7F
        self.marker = b1 & 0x80
        self.sequence_number = seq
        self.timestamp = ts
        self.ssrc = ssrc
        self.payload_offset = offset
        self.vp8: Vp8Info | None = None
        """VP8 payload descriptor fields, filled in by the up-track (sfu.layers)."""
        self.extensions = extensions


def _split_extensions(profile: int, block: bytes) -> list[tuple[int, bytes]]:
    elements: list[tuple[int, bytes]] = []
    i = 0
    n = len(block)
    if profile == ONE_BYTE_PROFILE:
        while i < n:
            head = block[i]
            if head == 0:  # padding
                i += 1
                continue
            ext_id = head >> 4
            if ext_id == 15:  # reserved: stop parsing (RFC 8285 section 4.2)
                break
            length = (head & 0x0F) + 1
            elements.append((ext_id, block[i + 1 : i + 1 + length]))
            i += 1 + length
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while i + 1 < n:
            ext_id = block[i]
            if ext_id == 0:
                i += 1
                continue
            length = block[i + 1]
            elements.append((ext_id, block[i + 2 : i + 2 + length]))
            i += 2 + length
    return elements


def build_extensions(elements: list[tuple[int, bytes]], id_map: dict[int, int]) -> bytes:
    """A one-byte-header extension block (with its 4-byte head), ids mapped by id_map.

    Elements whose id is not in id_map, or too long for the one-byte form, are
    dropped. Returns b"" when nothing is left.
    """
    body = bytearray()
    for ext_id, value in elements:
        new_id = id_map.get(ext_id)
        if new_id is None or not 1 <= len(value) <= 16:
            continue
        body.append((new_id << 4) | (len(value) - 1))
        body += value
    if not body:
        return b""
    pad = -len(body) % 4
    if pad:
        body += b"\x00" * pad
    return _EXT_HEAD.pack(ONE_BYTE_PROFILE, len(body) // 4) + bytes(body)


def build_packet(
    view: RtpView,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    extension_block: bytes,
) -> bytes:
    """The packet in view with a new header and the same CSRCs, payload and padding."""
    data = view.data
    b0 = data[0]
    cc = b0 & 0x0F
    b0 = (b0 & 0xEF) | (0x10 if extension_block else 0)
    head = _FIXED.pack(b0, view.marker | payload_type, sequence_number, timestamp, ssrc)
    if cc:
        head += data[12 : 12 + 4 * cc]
    return head + extension_block + data[view.payload_offset :]


def seq_newer(a: int, b: int) -> bool:
    """True when 16-bit sequence number a comes after b (with wrap-around)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000
