"""A down-track: one publisher's track as sent to one subscriber.

Rewrites what the subscriber must see as a single continuous stream: SSRC (the
down sender's), payload type and header-extension ids (mapped by codec and URI
between the two negotiations), sequence numbers and timestamps (continuous across
pauses, restarts and switches of the source). Keeps the last CACHE_SIZE packets to
answer NACKs and sends RTCP sender reports derived from the publisher's.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import AnyRtcpPacket

from sfu import aiortc_private as private
from sfu import rtcp
from sfu.conn import DownTrackInfo
from sfu.rtpheader import RtpView, build_extensions, build_packet, seq_newer
from sfu.stats import Stats

if TYPE_CHECKING:
    from sfu.uptrack import RtpUpTrack

logger = logging.getLogger(__name__)

CACHE_SIZE = 512
"""Packets kept per down-track for retransmission (a power of two)."""
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
"""Dropped when forwarding: its value is the publisher's mid, meaningless downstream."""


_last_extensions: list[Any] = [None, None, b""]
"""(packet, id map, block) of the latest extension block built."""


def _mapped_extensions(view: RtpView, id_map: dict[int, int]) -> bytes:
    # Every subscriber of a packet usually has the same extension ids (the SFU wrote
    # its down offers): build the block once per packet, not once per subscriber.
    # Holding the view keeps it alive, so `is` cannot match a new packet by accident.
    last = _last_extensions
    if last[0] is view and (last[1] is id_map or last[1] == id_map):
        return last[2]  # type: ignore[no-any-return]
    block = build_extensions(view.extensions, id_map)
    last[0], last[1], last[2] = view, id_map, block
    return block


def codec_key(codec: RTCRtpCodecParameters) -> tuple[str, int, str]:
    """What must match for a payload to be understood on the other side."""
    mode = ""
    if codec.mimeType.lower() == "video/h264":
        mode = str(codec.parameters.get("packetization-mode", "0"))
    return codec.mimeType.lower(), codec.clockRate, mode


class RtpDownTrack:
    """Rewrites and sends one up-track's packets on one sendonly transceiver."""

    def __init__(
        self,
        subscriber: str,
        info: DownTrackInfo,
        transceiver: RTCRtpTransceiver,
        stats: Stats,
        drop_rate: float = 0.0,
    ) -> None:
        self.subscriber = subscriber
        """Opaque id of the participant receiving this track."""
        self.info = info
        """What the subscriber is told about the track (mid filled in after the offer)."""
        self.transceiver = transceiver
        self.ssrc = private.sender_ssrc(transceiver.sender)
        self.packets_sent = 0
        self.octets_sent = 0
        self._stats = stats
        self._drop_rate = drop_rate
        self._writer = private.writer_for(transceiver)
        self._up: RtpUpTrack | None = None
        self._pt_map: dict[int, int] = {}
        self._clock: dict[int, int] = {}
        self._ext_map: dict[int, int] = {}
        self._negotiated = False
        self._cache: list[tuple[int, bytes] | None] = [None] * CACHE_SIZE
        self._remb: int | None = None
        self._src_ssrc: int | None = None
        self._seg_first_seq = 0
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq: int | None = None
        self._last_ts = 0
        self._last_time = 0.0
        self._resync = True
        private.silence_sender(transceiver.sender, self.on_started, self.on_rtcp)

    @property
    def up(self) -> RtpUpTrack | None:
        return self._up

    @property
    def remb(self) -> int | None:
        return self._remb

    # --- wiring ----------------------------------------------------------------------

    def attach(self, up: RtpUpTrack) -> None:
        """Feeds this down-track from up (replacing any previous up-track)."""
        if self._up is up:
            return
        if self._up is not None:
            self._up.remove_down(self)
        self._up = up
        self._resync = True
        self.refresh()
        up.add_down(self)
        if self._negotiated:
            up.request_keyframe()

    def detach(self, up: RtpUpTrack | None = None) -> None:
        """Stops being fed (by up, if given)."""
        if self._up is None or (up is not None and self._up is not up):
            return
        self._up.remove_down(self)
        self._up = None
        self._pt_map = {}

    def negotiated(self) -> None:
        """The subscriber answered: codecs and extensions of the down side are final."""
        self._negotiated = True
        self.refresh()

    def refresh(self) -> None:
        """Recomputes the payload-type and extension-id maps."""
        up = self._up
        if up is None or not self._negotiated:
            self._pt_map = {}
            return
        down_codecs = {codec_key(c): c for c in private.negotiated_codecs(self.transceiver)}
        pt_map: dict[int, int] = {}
        clock: dict[int, int] = {}
        for pt, codec in up.codecs.items():
            match = down_codecs.get(codec_key(codec))
            if match is not None and match.payloadType is not None:
                pt_map[pt] = match.payloadType
                clock[pt] = codec.clockRate
        by_uri = {
            uri: ext_id
            for ext_id, uri in private.negotiated_extensions(self.transceiver).items()
            if uri != MID_URI
        }
        self._ext_map = {
            ext_id: by_uri[uri] for ext_id, uri in up.extensions.items() if uri in by_uri
        }
        self._pt_map = pt_map
        self._clock = clock

    def resync(self) -> None:
        self._resync = True

    # --- packets -------------------------------------------------------------------

    def write_rtp(self, view: RtpView) -> None:
        """Rewrites one packet from the up-track and sends it to the subscriber."""
        out_pt = self._pt_map.get(view.payload_type)
        if out_pt is None:
            if self._negotiated:
                self._stats.unforwardable_packets += 1
            return
        seq = view.sequence_number
        if self._resync or view.ssrc != self._src_ssrc:
            self._start_segment(view)
        elif (seq - self._seg_first_seq) & 0xFFFF >= 0x8000:
            # Older than the current segment: its number may already be taken.
            self._stats.unforwardable_packets += 1
            return
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (view.timestamp + self._ts_offset) & 0xFFFFFFFF
        ext = _mapped_extensions(view, self._ext_map) if view.extensions else b""
        data = build_packet(view, out_pt, out_seq, out_ts, self.ssrc, ext)
        self._cache[out_seq & (CACHE_SIZE - 1)] = (out_seq, data)
        last = self._last_seq
        if last is None or seq_newer(out_seq, last):
            self._last_seq = out_seq
            if out_ts != self._last_ts:
                self._last_ts = out_ts
                self._last_time = time.monotonic()
        if self._drop_rate and random.random() < self._drop_rate:
            self._stats.dropped_packets += 1
            return
        if self._writer.write_rtp(data):
            stats = self._stats
            stats.forwarded_packets += 1
            stats.forwarded_bytes += len(data)
            self.packets_sent += 1
            self.octets_sent += len(data) - view.payload_offset

    def _start_segment(self, view: RtpView) -> None:
        seq = view.sequence_number
        ts = view.timestamp
        if self._last_seq is None:
            # Low start like aiortc's senders: no SRTP rollover early on.
            self._seq_offset = (random.randrange(0x8000) - seq) & 0xFFFF
            self._ts_offset = (random.getrandbits(32) - ts) & 0xFFFFFFFF
        else:
            self._seq_offset = (self._last_seq + 1 - seq) & 0xFFFF
            if view.ssrc != self._src_ssrc:
                # A different source has its own clock: continue ours from the
                # last timestamp plus the wall-clock time since.
                rate = self._clock.get(view.payload_type, 90000)
                elapsed = max(0.0, time.monotonic() - self._last_time)
                step = max(1, int(elapsed * rate))
                self._ts_offset = (self._last_ts + step - ts) & 0xFFFFFFFF
            # Same source after a pause: its clock kept running, keep the offset.
        self._src_ssrc = view.ssrc
        self._seg_first_seq = seq
        self._resync = False

    # --- feedback from the subscriber --------------------------------------------

    def on_started(self) -> None:
        """aiortc started the sender: the subscriber is connected and wants a keyframe."""
        if self._up is not None:
            self._up.request_keyframe()

    def on_rtcp(self, packet: AnyRtcpPacket) -> None:
        kind, detail = rtcp.classify(packet)
        if kind == rtcp.Feedback.NACK:
            self._answer_nack(detail)  # type: ignore[arg-type]
        elif kind == rtcp.Feedback.KEYFRAME:
            if self._up is not None:
                self._up.request_keyframe()
        elif kind == rtcp.Feedback.REMB:
            self._remb = int(detail)  # type: ignore[call-overload]

    def _answer_nack(self, lost: list[int]) -> None:
        stats = self._stats
        upstream: list[int] = []
        for seq in lost:
            stats.nacks_received += 1
            entry = self._cache[seq & (CACHE_SIZE - 1)]
            if entry is not None and entry[0] == seq:
                if self._writer.write_rtp(entry[1]):
                    stats.nacks_answered += 1
                continue
            stats.nacks_missed += 1
            # Never reached the SFU (or long gone): ask the publisher, in its numbers.
            in_seq = (seq - self._seq_offset) & 0xFFFF
            if (in_seq - self._seg_first_seq) & 0xFFFF < 0x8000:
                upstream.append(in_seq)
        up = self._up
        if upstream and up is not None and up.ssrc == self._src_ssrc:
            up.nack_upstream(upstream)

    def send_sender_report(self) -> None:
        """An SR mapping the publisher's NTP time to this track's RTP timestamps."""
        up = self._up
        if up is None or up.sender_report is None or self.packets_sent == 0:
            return
        if up.ssrc != self._src_ssrc:
            return
        ntp, rtp_ts, at = up.sender_report
        elapsed = max(0.0, time.time() - at)
        rate = next(iter(self._clock.values()), 90000)
        report = rtcp.sender_report(
            self.ssrc,
            ntp + int(elapsed * (1 << 32)),
            rtp_ts + int(elapsed * rate) + self._ts_offset,
            self.packets_sent,
            self.octets_sent,
            private.sender_cname(self.transceiver.sender),
        )
        if self._writer.write_rtcp(report):
            self._stats.sender_reports_sent += 1
