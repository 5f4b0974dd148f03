"""Where a decoder can start: the first packet of a keyframe, read from the payload
descriptor only (VP8, RFC 7741; H.264, RFC 6184). The SFU never decodes; with E2EE
these first bytes stay in clear, so this works for encrypted frames too.
"""

from __future__ import annotations

from sfu.layers import vp8_info


def starts_keyframe(mime_type: str, payload: bytes) -> bool | None:
    """True/False for the codecs we know, None for others (the caller cannot wait)."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return _vp8(payload)
    if mime == "video/h264":
        return _h264(payload)
    return None


def _vp8(p: bytes) -> bool:
    info = vp8_info(p)  # the one reader of the VP8 payload descriptor (sfu/layers.py)
    return info is not None and info[5]


def _h264(p: bytes) -> bool:
    if not p:
        return False
    nal = p[0] & 0x1F
    if nal in (5, 7):  # IDR slice, SPS
        return True
    if nal == 24:  # STAP-A: the first aggregated NAL unit
        return len(p) > 3 and (p[3] & 0x1F) in (5, 7)
    if nal == 28:  # FU-A: the start fragment of an IDR slice
        return len(p) > 1 and bool(p[1] & 0x80) and (p[1] & 0x1F) == 5
    return False


PADDING_SIZE = 224
"""Bytes of padding per probe packet (the count must fit the RTP header's last byte)."""


def padding_packet(payload_type: int, seq: int, timestamp: int, ssrc: int) -> bytes:
    """An RTP packet that carries only padding (RFC 3550 section 5.1): what a sender
    probes a link with; receivers count it and throw it away."""
    header = bytes(
        (
            0xA0,  # V=2, P=1
            payload_type & 0x7F,
            (seq >> 8) & 0xFF,
            seq & 0xFF,
        )
    )
    header += timestamp.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
    return header + bytes(PADDING_SIZE - 1) + bytes((PADDING_SIZE,))
