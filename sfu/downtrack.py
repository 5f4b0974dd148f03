"""A down-track: one publisher's track as sent to one subscriber.

Rewrites what the subscriber must see as a single continuous stream: SSRC (the
down sender's), payload type and header-extension ids (mapped by codec and URI
between the two negotiations), sequence numbers and timestamps (continuous across
pauses, restarts and switches of the source). Keeps the last CACHE_SIZE packets to
answer NACKs, within a retransmission budget, and sends RTCP sender reports derived
from the publisher's.

What the subscriber's link can carry is judged per subscriber (sfu/downlink.py): this
track keeps the subscriber's own feedback (REMB, loss and round-trip time from its
receiver reports), can pause (video: nothing is sent; on resume it waits for a
keyframe so the picture restarts cleanly) and can send a probe (padding and a sender
report whose echo shows how long the burst queued on the way).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import AnyRtcpPacket

from sfu import aiortc_private as private
from sfu import rtcp
from sfu.conn import DownTrackInfo
from sfu.keyframe import PADDING_SIZE, padding_packet, starts_keyframe
from sfu.layers import TOP_LAYER, LayerGate
from sfu.rtpheader import RtpView, build_extensions, build_packet, seq_newer
from sfu.stats import Stats

if TYPE_CHECKING:
    from sfu.uptrack import RtpUpTrack

logger = logging.getLogger(__name__)

CACHE_SIZE = 512
"""Packets kept per down-track for retransmission (a power of two)."""
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
"""Dropped when forwarding: its value is the publisher's mid, meaningless downstream."""
SEGMENT_WINDOW = 0x4000
"""Packets older than the newest by more than this are dropped, not forwarded. The
window slides with the stream: measured from a fixed segment start instead, every
segment longer than 32768 packets (three minutes of video) stopped forwarding for the
next 32768 — the freeze after long meetings."""
RETX_SHARE = 0.25
"""Retransmissions to one subscriber may use at most this share of what it is sent…"""
RETX_BURST = 48_000
"""…plus this many bytes saved up (a lost keyframe's worth)."""
RETX_MAX_AGE = 1.0
"""Seconds after which a packet is not resent any more: it would come too late."""
RETX_REPEAT = 0.1
"""Seconds before the same packet is resent again (a receiver repeats its NACKs)."""


@dataclass
class LinkFeedback:
    """What the subscriber's receiver reports say about its link (per down-track)."""

    remb: int | None = None
    """Latest REMB (bits/s): the subscriber's estimate for its whole down connection."""
    remb_falls: int = 0
    """REMBs that were a decrease (the delay-based detector saw the link overused)."""
    remb_at: float = 0.0
    fraction_lost: float = 0.0
    """Share of packets lost according to the latest receiver report."""
    rtt: float | None = None
    """Latest round-trip time (seconds) measured from an ordinary sender report."""
    probe_rtt: float | None = None
    """Round-trip time of the last probe's sender report, once echoed."""


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
        self._cache: list[tuple[int, bytes, float] | None] = [None] * CACHE_SIZE
        self._remb: int | None = None
        self._src_ssrc: int | None = None
        self._seg_first_seq = 0
        self._seq_offset = 0
        self._ts_offset = 0
        self._last_seq: int | None = None
        self._last_ts = 0
        self._last_time = 0.0
        self._resync = True
        self._mime: dict[int, str] = {}
        self._paused = False
        self._await_keyframe = False
        self._retx_tokens = float(RETX_BURST)
        self._retx_at: dict[int, float] = {}
        self._sr_sent: dict[int, tuple[float, bool]] = {}
        self.feedback = LinkFeedback()
        """The subscriber's feedback as seen on this track."""
        self.gate = LayerGate()
        """Which VP8 temporal layers this subscriber gets (sfu/layers.py)."""
        private.silence_sender(transceiver.sender, self.on_started, self.on_rtcp)

    @property
    def up(self) -> RtpUpTrack | None:
        return self._up

    @property
    def remb(self) -> int | None:
        return self._remb

    @property
    def fraction_lost(self) -> float:
        """The receiver's last reported loss, 0 to 1."""
        return self.feedback.fraction_lost

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def paused(self) -> bool:
        return self._paused

    def set_layer(self, layer: int) -> None:
        """Forward temporal layers up to layer (fewer at once, more from a keyframe,
        which is asked for)."""
        layer = max(0, min(TOP_LAYER, layer))
        gate = self.gate
        if layer == gate.wanted:
            return
        gate.wanted = layer
        if layer > gate.layer and self._up is not None:
            self._up.request_keyframe()

    def need(self, layer: int | None = None) -> float:
        """Bits/s this track takes with temporal layers up to layer (default: the
        current one); the whole stream when the publisher sends no layers."""
        up = self._up
        if up is None:
            return 0.0
        rates = up.layer_bitrates
        if not rates:
            return up.bitrate
        top = self.gate.wanted if layer is None else layer
        return sum(rates[: top + 1])

    def set_paused(self, paused: bool) -> None:
        """Stops (True) or restarts (False) sending to this subscriber. A restarted video
        track waits for the next keyframe, and asks for one."""
        if paused == self._paused:
            return
        self._paused = paused
        if not paused:
            self._resync = True
            if self.info.kind == "video":
                self._await_keyframe = True
                if self._up is not None:
                    self._up.request_keyframe()

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
        mime: dict[int, str] = {}
        for pt, codec in up.codecs.items():
            match = down_codecs.get(codec_key(codec))
            if match is not None and match.payloadType is not None:
                pt_map[pt] = match.payloadType
                clock[pt] = codec.clockRate
                mime[pt] = codec.mimeType
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
        self._mime = mime

    def resync(self) -> None:
        self._resync = True

    # --- packets -------------------------------------------------------------------

    def write_rtp(self, view: RtpView) -> None:
        """Rewrites one packet from the up-track and sends it to the subscriber."""
        if self._paused:
            return
        out_pt = self._pt_map.get(view.payload_type)
        if out_pt is None:
            if self._negotiated:
                self._stats.unforwardable_packets += 1
            return
        if self._await_keyframe:
            end = len(view.data) - (view.data[-1] if view.data[0] & 0x20 else 0)
            payload = view.data[view.payload_offset : end]
            if starts_keyframe(self._mime.get(view.payload_type, ""), payload) is False:
                return
            self._await_keyframe = False
        seq = view.sequence_number
        if self._resync or view.ssrc != self._src_ssrc:
            self._start_segment(view)
        else:
            age = (seq - self._seg_first_seq) & 0xFFFF
            if age >= 0x8000:
                # Older than the current segment: its number may already be taken.
                self._stats.unforwardable_packets += 1
                return
            if age > SEGMENT_WINDOW:
                self._seg_first_seq = (seq - SEGMENT_WINDOW) & 0xFFFF
        gate = self.gate
        vp8 = view.vp8
        shift = 0
        if gate.active:
            if vp8 is not None and not gate.admit(seq, vp8):
                self._stats.layer_dropped_packets += 1
                return
            shift = gate.shift_for(seq)
        out_seq = (seq + self._seq_offset - shift) & 0xFFFF
        out_ts = (view.timestamp + self._ts_offset) & 0xFFFFFFFF
        ext = _mapped_extensions(view, self._ext_map) if view.extensions else b""
        data = build_packet(view, out_pt, out_seq, out_ts, self.ssrc, ext)
        if vp8 is not None and gate.active:
            data = gate.rewrite(data, len(data) - len(view.data) + view.payload_offset, vp8)
        now = time.monotonic()
        self._cache[out_seq & (CACHE_SIZE - 1)] = (out_seq, data, now)
        tokens = self._retx_tokens + RETX_SHARE * len(data)
        self._retx_tokens = tokens if tokens < RETX_BURST else float(RETX_BURST)
        last = self._last_seq
        if last is None or seq_newer(out_seq, last):
            self._last_seq = out_seq
            if out_ts != self._last_ts:
                self._last_ts = out_ts
                self._last_time = now
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
        self.gate.reset()

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
            self._got_remb(int(detail))  # type: ignore[call-overload]
        elif kind == rtcp.Feedback.RR:
            for report in detail:  # type: ignore[attr-defined]
                if report.ssrc == self.ssrc:
                    self._got_report(report.fraction_lost, report.lsr, report.dlsr)

    def _got_remb(self, bitrate: int) -> None:
        fb = self.feedback
        if fb.remb is not None and bitrate < 0.95 * fb.remb:
            fb.remb_falls += 1
        fb.remb = self._remb = bitrate
        fb.remb_at = time.monotonic()

    def _got_report(self, fraction_lost: int, lsr: int, dlsr: int) -> None:
        fb = self.feedback
        fb.fraction_lost = fraction_lost / 256
        sent = self._sr_sent.pop(lsr, None) if lsr else None
        if sent is not None:
            rtt = max(0.0, time.monotonic() - sent[0] - dlsr / 65536)
            if sent[1]:
                fb.probe_rtt = rtt
            else:
                fb.rtt = rtt

    def _answer_nack(self, lost: list[int]) -> None:
        stats = self._stats
        upstream: list[int] = []
        now = time.monotonic()
        if len(self._retx_at) > CACHE_SIZE:
            self._retx_at = {k: v for k, v in self._retx_at.items() if now - v < RETX_REPEAT}
        for seq in lost:
            stats.nacks_received += 1
            entry = self._cache[seq & (CACHE_SIZE - 1)]
            if entry is not None and entry[0] == seq:
                size = len(entry[1])
                if (
                    now - entry[2] > RETX_MAX_AGE
                    or now - self._retx_at.get(seq, 0.0) < RETX_REPEAT
                    or self._retx_tokens < size
                ):
                    stats.nacks_refused += 1
                elif self._writer.write_rtp(entry[1]):
                    self._retx_tokens -= size
                    self._retx_at[seq] = now
                    stats.nacks_answered += 1
                continue
            stats.nacks_missed += 1
            # Never reached the SFU (or long gone): ask the publisher, in its numbers.
            guess = (seq - self._seq_offset + self.gate.seq_shift) & 0xFFFF
            in_seq = (seq - self._seq_offset + self.gate.shift_for(guess)) & 0xFFFF
            if (in_seq - self._seg_first_seq) & 0xFFFF < 0x8000:
                upstream.append(in_seq)
        up = self._up
        if upstream and up is not None and up.ssrc == self._src_ssrc:
            up.nack_upstream(upstream)

    def send_sender_report(self, probe: bool = False) -> bool:
        """An SR mapping the publisher's NTP time to this track's RTP timestamps. While
        paused only probes send one: the receiver echoes the latest SR it got, and the
        probe's echo must not be overwritten."""
        up = self._up
        if up is None or up.sender_report is None or self.packets_sent == 0:
            return False
        if up.ssrc != self._src_ssrc or (self._paused and not probe):
            return False
        ntp, rtp_ts, at = up.sender_report
        elapsed = max(0.0, time.time() - at)
        rate = next(iter(self._clock.values()), 90000)
        ntp_now = ntp + int(elapsed * (1 << 32))
        report = rtcp.sender_report(
            self.ssrc,
            ntp_now,
            rtp_ts + int(elapsed * rate) + self._ts_offset,
            self.packets_sent,
            self.octets_sent,
            private.sender_cname(self.transceiver.sender),
        )
        if not self._writer.write_rtcp(report):
            return False
        self._stats.sender_reports_sent += 1
        if len(self._sr_sent) > 8:
            oldest = min(self._sr_sent, key=lambda k: self._sr_sent[k][0])
            del self._sr_sent[oldest]
        self._sr_sent[rtcp.ntp_middle(ntp_now)] = (time.monotonic(), probe)
        return True

    def probe(self, nbytes: int) -> bool:
        """Sends about nbytes of padding back to back, then a sender report: how much
        later than usual its echo comes back tells how fast the burst drained, i.e. what
        the link carries, without sending any media. Only on a paused track."""
        if not self._paused or self._last_seq is None or not self._pt_map:
            return False
        pt = next(iter(self._pt_map.values()))
        self.feedback.probe_rtt = None
        for _ in range(max(1, nbytes // PADDING_SIZE)):
            seq = (self._last_seq + 1) & 0xFFFF
            data = padding_packet(pt, seq, self._last_ts, self.ssrc)
            # Kept like media: a NACK for it is answered here, not sent to a publisher.
            self._cache[seq & (CACHE_SIZE - 1)] = (seq, data, time.monotonic())
            if not self._writer.write_rtp(data):
                return False
            self._last_seq = seq
            self.packets_sent += 1
            self._stats.probe_bytes += len(data)
        return self.send_sender_report(probe=True)
