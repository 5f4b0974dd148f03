"""The SFU's vocabulary: what a track is, up (client→server) and down (server→client).

Like Galène's conn/conn.go, this file only names things; uptrack.py, downtrack.py,
peer.py and router.py implement them. Up-tracks fan packets out to down-tracks;
down-tracks send feedback (keyframe requests, bandwidth) back up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TrackInfo:
    """A track a participant publishes, as announced next to its up offer."""

    mid: str
    """The m-line's mid in the up offer."""
    kind: str
    """"audio" or "video"."""
    source: str
    """"mic", "camera" or "screen"."""


@dataclass(frozen=True)
class DownTrackInfo:
    """A track a participant receives, as announced next to its down offer."""

    mid: str
    """The m-line's mid in the down offer."""
    participant: str
    """Opaque id of the publisher."""
    kind: str
    """"audio" or "video"."""
    source: str
    """"mic", "camera" or "screen"."""


SOURCES = ("mic", "camera", "screen")
KINDS = ("audio", "video")


class UpTrack(Protocol):
    """A track received from a publisher."""

    participant: str
    info: TrackInfo

    def add_down(self, down: DownTrack) -> None:
        """Starts fanning packets out to down."""

    def remove_down(self, down: DownTrack) -> None:
        """Stops fanning packets out to down."""

    def request_keyframe(self) -> None:
        """Asks the publisher for a keyframe (throttled)."""

    def set_forwarding(self, enabled: bool) -> None:
        """Mute (False) stops forwarding to every down-track; True resumes."""


class DownTrack(Protocol):
    """A track sent to a subscriber, fed by one up-track."""

    def write_rtp(self, packet: RtpView) -> None:
        """Rewrites and sends one packet from the up-track."""

    def resync(self) -> None:
        """The next packet starts a new segment (after a pause or a source switch)."""

    @property
    def remb(self) -> int | None:
        """The subscriber's latest bandwidth estimate in bit/s, if any."""


class RtpView(Protocol):
    """The header fields of an incoming RTP packet, parsed once per packet."""

    data: bytes
    payload_type: int
    marker: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload_offset: int
    extensions: list[tuple[int, bytes]]
