"""Counters the router keeps, for /metrics, tests and benchmarks.

Aggregate numbers only: no ids, no addresses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Stats:
    """Running totals of one Router. Counters only grow; gauges follow the rooms."""

    forwarded_packets: int = 0
    """RTP packets written to subscribers (retransmissions not included)."""
    forwarded_bytes: int = 0
    """Bytes of those packets (RTP header included, before SRTP)."""
    received_packets: int = 0
    """RTP packets received from publishers."""
    late_packets_received: int = 0
    """Packets from publishers older than the newest seen (mostly retransmissions the
    SFU asked for)."""
    dropped_packets: int = 0
    """Packets dropped by the test_drop_rate / test_down_drop_rate hooks."""
    dropped_up_packets: int = 0
    """Of those, dropped on arrival from publishers (test_drop_rate, before decryption)."""
    unforwardable_packets: int = 0
    """Packets with a payload type the subscriber did not negotiate, or too old."""
    layer_dropped_packets: int = 0
    """VP8 packets of temporal layers a subscriber's link was judged not to carry."""
    nacks_received: int = 0
    """Sequence numbers subscribers reported lost."""
    nacks_answered: int = 0
    """Of those, retransmitted from a down-track's packet cache."""
    nacks_missed: int = 0
    """Of those, no longer (or never) in the cache."""
    nacks_refused: int = 0
    """Of those, in the cache but not resent: too old, just resent, or over the
    subscriber's retransmission budget."""
    late_packets_repaired: int = 0
    """Gaps from publishers that filled in by themselves within the reordering window
    (no NACK sent)."""
    nacks_sent_upstream: int = 0
    """Sequence numbers the SFU asked publishers to retransmit."""
    keyframes_requested: int = 0
    """Keyframe requests from subscribers or the server (before throttling)."""
    plis_sent_upstream: int = 0
    """PLIs actually sent to publishers (after throttling)."""
    rembs_sent_upstream: int = 0
    """REMB messages sent to publishers (the best subscriber's estimate)."""
    video_pauses: int = 0
    """Times a subscriber's link could not carry its video and the video was paused."""
    layer_downs: int = 0
    """Times a subscriber's link was judged to carry fewer VP8 temporal layers."""
    layer_ups: int = 0
    """Times a probe showed a subscriber's link carries one more layer again."""
    video_resumes: int = 0
    """Times a probe showed the link recovered and the video was resumed."""
    probes_sent: int = 0
    """Link probes (padding burst + sender report) sent to paused subscribers."""
    probe_bytes: int = 0
    """Bytes of padding those probes sent."""
    receiver_reports_sent: int = 0
    """RTCP receiver reports sent to publishers (loss and RTT for their congestion control)."""
    sender_reports_sent: int = 0
    """RTCP sender reports sent on down-tracks."""
    rooms: int = 0
    """Rooms with at least one participant (gauge)."""
    participants: int = 0
    """Participants known to the router (gauge)."""
    up_tracks: int = 0
    """Tracks being received from publishers (gauge)."""
    down_tracks: int = 0
    """Tracks being sent to subscribers (gauge)."""

    def snapshot(self) -> dict[str, int]:
        """All counters as a plain dict (for logs, metrics and test output)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}
