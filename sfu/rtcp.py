"""RTCP packets the SFU writes itself (RFC 3550, RFC 4585, draft-alvestrand-rmcat-remb).

Incoming RTCP is parsed by aiortc (it has to route it anyway); outgoing feedback and
sender reports are packed here with struct, without aiortc's packet objects.
"""

from __future__ import annotations

import struct

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_RTPFB = 205
RTCP_PSFB = 206

_HEAD = struct.Struct("!BBH")
_FB = struct.Struct("!BBHII")

__all__ = [
    "Feedback",
    "classify",
    "nack",
    "ntp_middle",
    "pli",
    "receiver_report",
    "remb",
    "sender_report",
]


class Feedback:
    """What a subscriber's RTCP packet asks of the SFU."""

    NACK = "nack"
    KEYFRAME = "keyframe"
    REMB = "remb"
    SR = "sr"
    RR = "rr"
    OTHER = "other"


def classify(packet: AnyRtcpPacket) -> tuple[str, object]:
    """(kind, detail) for an aiortc RTCP packet: lost seqs, bitrate, or sender info."""
    if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
        return Feedback.NACK, list(packet.lost)
    if isinstance(packet, RtcpPsfbPacket):
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            return Feedback.KEYFRAME, None
        if packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, _ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return Feedback.OTHER, None
            return Feedback.REMB, bitrate
    if isinstance(packet, RtcpSrPacket):
        return Feedback.SR, packet.sender_info
    if isinstance(packet, RtcpRrPacket):
        return Feedback.RR, list(packet.reports)
    return Feedback.OTHER, None


def ntp_middle(ntp_timestamp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp: what receivers echo as LSR."""
    return (ntp_timestamp >> 16) & 0xFFFFFFFF


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture Loss Indication (RFC 4585 section 6.3.1)."""
    return _FB.pack(0x80 | 1, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """Generic NACK (RFC 4585 section 6.2.1) for the given sequence numbers."""
    fci = bytearray()
    seqs = sorted(set(lost))
    i = 0
    while i < len(seqs):
        pid = seqs[i]
        blp = 0
        i += 1
        while i < len(seqs):
            delta = (seqs[i] - pid) & 0xFFFF
            if not 1 <= delta <= 16:
                break
            blp |= 1 << (delta - 1)
            i += 1
        fci += struct.pack("!HH", pid, blp)
    length = 2 + len(fci) // 4
    return _FB.pack(0x80 | 1, RTCP_RTPFB, length, sender_ssrc, media_ssrc) + bytes(fci)


def remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    """Receiver Estimated Maximum Bitrate for ssrcs."""
    exp = 0
    mantissa = max(0, int(bitrate))
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exp += 1
    fci = b"REMB" + struct.pack(
        "!BBH", len(ssrcs), (exp << 2) | (mantissa >> 16), mantissa & 0xFFFF
    )
    fci += b"".join(struct.pack("!I", s) for s in ssrcs)
    length = 2 + len(fci) // 4
    return _FB.pack(0x80 | 15, RTCP_PSFB, length, sender_ssrc, 0) + fci


def sender_report(
    ssrc: int,
    ntp_timestamp: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    cname: str | None,
) -> bytes:
    """A compound SR (+ SDES CNAME) without report blocks."""
    sr = _HEAD.pack(0x80, RTCP_SR, 6) + struct.pack(
        "!IQIII",
        ssrc,
        ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )
    if not cname:
        return sr
    text = cname.encode("utf-8")[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return sr + _HEAD.pack(0x81, RTCP_SDES, len(chunk) // 4) + chunk


def receiver_report(
    sender_ssrc: int,
    media_ssrc: int,
    fraction_lost: int,
    packets_lost: int,
    highest_sequence: int,
    jitter: int,
    lsr: int,
    dlsr: int,
) -> bytes:
    """An RR with one report block (RFC 3550 section 6.4.2)."""
    lost = max(-0x800000, min(0x7FFFFF, packets_lost)) & 0xFFFFFF
    return _HEAD.pack(0x81, RTCP_RR, 7) + struct.pack(
        "!IIIIIII",
        sender_ssrc,
        media_ssrc,
        (min(255, max(0, fraction_lost)) << 24) | lost,
        highest_sequence & 0xFFFFFFFF,
        jitter & 0xFFFFFFFF,
        lsr & 0xFFFFFFFF,
        dlsr & 0xFFFFFFFF,
    )
