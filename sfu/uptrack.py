"""An up-track: one track received from a publisher, fanned out to down-tracks.

Packets arrive as raw bytes (after SRTP) from aiortc_private.tap_rtp; the header is
parsed once here and each down-track builds its own header from the result. The
up-track also talks back to the publisher: NACKs for packets lost on the way in (only
after a short reordering window), throttled PLIs on behalf of subscribers, receiver
reports, and a REMB.

Congestion control is per link. The publisher's own link is judged by its encoder from
our receiver reports (loss, RTT) and from the REMB we pass up: the best subscriber's
estimate, which is bounded by the publisher's uplink too (the abs-send-time it reads
was stamped by the publisher). A subscriber whose link is weaker never lowers what the
publisher sends: its video is paused for it alone (sfu/downlink.py). For audio the
receiver report carries the worst loss a subscriber reports, so the Opus encoder turns
on in-band FEC when someone needs it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import AnyRtcpPacket

from sfu import rtcp
from sfu.conn import TrackInfo
from sfu.layers import TOP_LAYER, vp8_info
from sfu.rtpheader import RtpView, seq_newer
from sfu.stats import Stats

if TYPE_CHECKING:
    from sfu.aiortc_private import RtpWriter

logger = logging.getLogger(__name__)


class DownSink(Protocol):
    """What an up-track feeds: a down-track (`sfu.downtrack.RtpDownTrack`), seen only
    through these calls, so the two modules do not import each other."""

    def write_rtp(self, view: RtpView) -> None: ...

    def refresh(self) -> None:
        """The up-track's codecs or extensions changed: remap."""

    def resync(self) -> None:
        """The next packet starts a new sequence (forwarding resumed)."""

    def detach(self, up: RtpUpTrack | None = None) -> None:
        """The up-track ends: stop being fed by it."""

    @property
    def remb(self) -> int | None:
        """The receiver's bandwidth estimate in bit/s, if it sent one."""

    @property
    def fraction_lost(self) -> float:
        """The receiver's last reported loss, 0 to 1."""


KEYFRAME_INTERVAL = 0.5
"""At most one PLI per this many seconds per up-track."""
RENACK_INTERVAL = 0.02
"""Seconds before the same sequence number is NACKed upstream again."""
MAX_NACK_GAP = 100
"""A bigger jump in sequence numbers is treated as a restart, not as loss."""
REORDER_WINDOW = 0.03
"""Seconds a missing packet may still arrive late (reordered) before it is NACKed."""
NACK_MAX_AGE = 0.5
"""Seconds after which a missing packet is given up: a resend would come too late."""
RATE_WINDOW = 1.0
"""Seconds over which the incoming bitrate is measured."""

PayloadTap = Callable[[str, str, bytes], None]
"""Test-only observer of forwarded packets: (participant, kind, RTP payload without
header and padding). See Router.payload_tap."""


class RtpUpTrack:
    """A publisher's track as the SFU receives it."""

    def __init__(
        self,
        participant: str,
        info: TrackInfo,
        codecs: list[RTCRtpCodecParameters],
        extensions: dict[int, str],
        writer: RtpWriter,
        rtcp_ssrc: int,
        stats: Stats,
    ) -> None:
        self.participant = participant
        """Opaque id of the publisher."""
        self.info = info
        """mid, kind and source as announced with the up offer."""
        self.codecs: dict[int, RTCRtpCodecParameters] = {}
        """Negotiated payload types → codec."""
        self.extensions: dict[int, str] = {}
        """Negotiated header extension ids → URI."""
        self.ssrc: int | None = None
        """SSRC of the packets currently arriving (None before the first one)."""
        self.sender_report: tuple[int, int, float] | None = None
        """(NTP, RTP timestamp, local wall-clock time) of the publisher's last SR."""
        self.generation = 0
        """Bumped when codecs or extensions change, so down-tracks remap."""
        self.payload_tap: PayloadTap | None = None
        """Set by the router from Router.payload_tap (tests only); None costs nothing."""
        self._downs: tuple[DownSink, ...] = ()
        self._writer = writer
        self._rtcp_ssrc = rtcp_ssrc
        self._stats = stats
        self._forwarding = True
        self._max_seq: int | None = None
        self._base_seq = 0
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._nacked: dict[int, float] = {}
        self._missing: dict[int, float] = {}
        """Sequence numbers not yet seen → when the gap was noticed."""
        self._rate_bytes = 0
        self._rate_start = time.monotonic()
        self.bitrate = 0.0
        """Incoming bits/s over the last RATE_WINDOW (what a subscriber needs for it)."""
        self._layer_bytes = [0] * (TOP_LAYER + 1)
        self.layer_bitrates: tuple[float, ...] = ()
        """Incoming bits/s per VP8 temporal layer (layer 0 first) over the last
        RATE_WINDOW; empty while the publisher sends no temporal layers."""
        self._vp8_pts: frozenset[int] = frozenset()
        self._last_pli = 0.0
        self._pli_timer: asyncio.TimerHandle | None = None
        self._pli_wanted = False
        self._closed = False
        self.set_parameters(codecs, extensions)

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def downs(self) -> tuple[DownSink, ...]:
        return self._downs

    @property
    def forwarding(self) -> bool:
        return self._forwarding

    def set_parameters(
        self, codecs: list[RTCRtpCodecParameters], extensions: dict[int, str]
    ) -> None:
        """Takes the codecs and extensions of a (re)negotiated up connection."""
        self.codecs = {c.payloadType: c for c in codecs if c.payloadType is not None}
        self._vp8_pts = frozenset(
            pt for pt, c in self.codecs.items() if c.mimeType.lower() == "video/vp8"
        )
        self.extensions = dict(extensions)
        self.generation += 1
        for down in self._downs:
            down.refresh()

    def add_down(self, down: DownSink) -> None:
        if down not in self._downs:
            self._downs = (*self._downs, down)

    def remove_down(self, down: DownSink) -> None:
        self._downs = tuple(d for d in self._downs if d is not down)

    def set_forwarding(self, enabled: bool) -> None:
        if enabled == self._forwarding:
            return
        self._forwarding = enabled
        if enabled:
            # Subscribers see one continuous stream, and need a fresh keyframe.
            for down in self._downs:
                down.resync()
            self.request_keyframe()

    # --- packets from the publisher -----------------------------------------------

    def on_rtp(self, data: bytes) -> None:
        """One decrypted RTP packet from the publisher."""
        self._stats.received_packets += 1
        try:
            view = RtpView(data)
        except ValueError:
            return
        if view.ssrc != self.ssrc:
            self._new_source(view.ssrc)
        self._received += 1
        self._rate_bytes += len(data)
        if view.payload_type in self._vp8_pts:
            start = view.payload_offset
            end = len(data) - (data[-1] if data[0] & 0x20 else 0)
            info = view.vp8 = vp8_info(data[start : min(end, start + 8)])
            if info is not None:
                self._layer_bytes[max(0, info[0])] += len(data)
        self._track_sequence(view.sequence_number)
        if self._missing:
            self._nack_overdue()
        if self._pli_wanted:
            self._pli_wanted = False
            self._send_pli()
        if not self._forwarding:
            return
        tap = self.payload_tap
        if tap is not None:
            end = len(data) - (data[-1] if data[0] & 0x20 else 0)
            tap(self.participant, self.info.kind, data[view.payload_offset : end])
        for down in self._downs:
            down.write_rtp(view)

    def _new_source(self, ssrc: int) -> None:
        logger.debug("up-track %s: new SSRC", self.info.mid)
        self.ssrc = ssrc
        self._max_seq = None
        self._cycles = self._received = self._expected_prior = self._received_prior = 0
        self._nacked.clear()
        self._missing.clear()
        self.sender_report = None

    def _track_sequence(self, seq: int) -> None:
        # aiortc's receiver would NACK and count, but it never sees these packets.
        last = self._max_seq
        if last is None:
            self._max_seq = self._base_seq = seq
        elif seq_newer(seq, last):
            if seq < last:
                self._cycles += 0x10000
            self._max_seq = seq
            gap = (seq - last) & 0xFFFF
            if 1 < gap <= MAX_NACK_GAP and self.info.kind == "video":
                # Not lost yet: on a path with jitter the packet may just come later.
                now = time.monotonic()
                for i in range(1, gap):
                    self._missing[(last + i) & 0xFFFF] = now
        else:
            self._stats.late_packets_received += 1
            if self._missing.pop(seq, None) is not None:
                self._stats.late_packets_repaired += 1

    def _nack_overdue(self) -> None:
        now = time.monotonic()
        due = [seq for seq, at in self._missing.items() if now - at >= REORDER_WINDOW]
        if not due:
            return
        for seq in due:
            del self._missing[seq]
        self.nack_upstream(due)

    def nack_upstream(self, lost: list[int]) -> None:
        """Asks the publisher again for packets subscribers miss and no cache holds
        (our first NACK or the retransmission itself may have been lost too)."""
        if self.ssrc is None or not lost:
            return
        now = time.monotonic()
        nacked = self._nacked
        if len(nacked) > 1024:
            for seq, at in list(nacked.items()):
                if now - at > 2.0:
                    del nacked[seq]
        # Several subscribers miss the same packet: one request per RENACK_INTERVAL.
        # A packet gone for longer than NACK_MAX_AGE is not asked for again.
        wanted = [seq for seq in lost if now - nacked.get(seq, 0.0) >= RENACK_INTERVAL]
        if self._max_seq is not None:
            newest = self._max_seq
            horizon = max(MAX_NACK_GAP, int(self.bitrate * NACK_MAX_AGE / 8000))
            wanted = [seq for seq in wanted if (newest - seq) & 0xFFFF <= horizon]
        if wanted and self._writer.write_rtcp(rtcp.nack(self._rtcp_ssrc, self.ssrc, wanted)):
            for seq in wanted:
                nacked[seq] = now
            self._stats.nacks_sent_upstream += len(wanted)

    def on_rtcp(self, packet: AnyRtcpPacket) -> None:
        """RTCP from the publisher that aiortc routed to this track's receiver."""
        kind, detail = rtcp.classify(packet)
        if kind == rtcp.Feedback.SR and getattr(packet, "ssrc", None) == self.ssrc:
            info = detail
            self.sender_report = (
                int(info.ntp_timestamp),  # type: ignore[attr-defined]
                int(info.rtp_timestamp),  # type: ignore[attr-defined]
                time.time(),
            )

    # --- feedback to the publisher -------------------------------------------------

    def request_keyframe(self) -> None:
        """Asks the publisher for a keyframe, at most once per KEYFRAME_INTERVAL."""
        if self.info.kind != "video" or self._closed:
            return
        self._stats.keyframes_requested += 1
        if self._pli_timer is not None:
            return
        wait = self._last_pli + KEYFRAME_INTERVAL - time.monotonic()
        if wait <= 0:
            self._send_pli()
        else:
            self._pli_timer = asyncio.get_running_loop().call_later(wait, self._pli_due)

    def _pli_due(self) -> None:
        self._pli_timer = None
        if not self._closed:
            self._send_pli()

    def _send_pli(self) -> None:
        if self.ssrc is None:
            self._pli_wanted = True
            return
        if self._writer.write_rtcp(rtcp.pli(self._rtcp_ssrc, self.ssrc)):
            self._last_pli = time.monotonic()
            self._stats.plis_sent_upstream += 1
        else:
            self._pli_wanted = True

    def send_feedback(self) -> None:
        """Periodic RTCP to the publisher: a receiver report (loss, LSR/DLSR for its
        RTT) and the best subscriber's bandwidth estimate (REMB)."""
        now = time.monotonic()
        span = now - self._rate_start
        if span > 0:
            self.bitrate = self._rate_bytes * 8 / span
            layers = self._layer_bytes
            self.layer_bitrates = tuple(b * 8 / span for b in layers) if any(layers[1:]) else ()
        self._rate_bytes, self._rate_start = 0, now
        self._layer_bytes = [0] * (TOP_LAYER + 1)
        if self.ssrc is None or self._max_seq is None:
            return
        highest = self._cycles + self._max_seq
        expected = highest - self._base_seq + 1
        interval_expected = expected - self._expected_prior
        interval_lost = interval_expected - (self._received - self._received_prior)
        self._expected_prior, self._received_prior = expected, self._received
        fraction = 0
        if interval_expected > 0 and interval_lost > 0:
            fraction = (interval_lost << 8) // interval_expected
        if self.info.kind == "audio":
            # The encoder protects what the worst receiver loses, not only our uplink.
            worst = max((d.fraction_lost for d in self._downs), default=0.0)
            fraction = max(fraction, min(255, int(worst * 256)))
        lsr = dlsr = 0
        if self.sender_report is not None:
            ntp, _, at = self.sender_report
            lsr = (ntp >> 16) & 0xFFFFFFFF
            dlsr = int((time.time() - at) * 65536)
        packet = rtcp.receiver_report(
            self._rtcp_ssrc, self.ssrc, fraction, expected - self._received, highest, 0, lsr, dlsr
        )
        estimates = [d.remb for d in self._downs if d.remb is not None]
        if estimates:
            packet += rtcp.remb(self._rtcp_ssrc, max(estimates), [self.ssrc])
        if self._writer.write_rtcp(packet):
            self._stats.receiver_reports_sent += 1
            if estimates:
                self._stats.rembs_sent_upstream += 1

    def close(self) -> None:
        self._closed = True
        if self._pli_timer is not None:
            self._pli_timer.cancel()
            self._pli_timer = None
        for down in self._downs:
            down.detach(self)
        self._downs = ()
