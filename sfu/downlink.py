"""Whether one subscriber's link carries the video it receives: audio first.

The SFU forwards without decoding and publishers send one encoding each, so a
subscriber cannot be given a smaller picture. What it can be given is less: when its
own link cannot carry the video, the SFU pauses video to that subscriber alone (audio
keeps flowing) and the publishers keep sending what everybody else's links carry.

Pausing: the subscriber's REMB fell (its delay-based detector saw the link overused)
to below PAUSE_BELOW of the video it receives while the round-trip time of our sender
reports shows a queue (QUEUE_DELAY over the link's usual minimum), or its receiver
reports show heavy loss, on two ticks in a row. The queue is the proof: Chromium's
estimate also falls under jitter, random loss or a busy machine, where pausing only took
video away from a link that carried it (bench.network: 3 pauses each in its 10 % loss
and its 40 ± 10 ms jitter windows). A link that cannot carry its video queues it.

Resuming: every PROBE_EVERY seconds a paused subscriber gets a probe, PROBE_BYTES of
RTP padding back to back and a sender report behind them. The receiver echoes the
report (LSR/DLSR); the extra round-trip time over the usual one is how long the burst
queued, so PROBE_BYTES / extra is what the link drains. When that carries the video,
the video resumes (at the next keyframe). A REMB cannot decide this: while paused it
hears nothing, and after a pause Chromium's estimate climbs only about 8 % a second.

Less before nothing: publishers whose browser can send their camera in three VP8
temporal layers (sfu/layers.py). When the estimate falls below FEWER_BELOW (but not
PAUSE_BELOW) of the video sent while the link queues, on two ticks in a row, the
subscriber gets one temporal layer fewer: half the frames for about a third less. After
LAYER_RETRY seconds it gets all layers again (from a keyframe); a link still too weak
soon gives one up again. Layer 0 alone carries about half the bits, so a link far under
the video (the capped case of bench.network) is paused as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sfu.downtrack import RtpDownTrack
from sfu.layers import TOP_LAYER
from sfu.stats import Stats

logger = logging.getLogger(__name__)

TICK = 0.5
"""Seconds between decisions."""
PAUSE_BELOW = 0.5
"""Pause when the subscriber's fallen estimate is below this share of its video…
(Chromium's REMB here measures the video alone: aiortc offers abs-send-time, which its
estimator reads, on video only. The voices are not subtracted from it.)"""
FEWER_BELOW = 0.8
"""…and leave out one temporal layer when it is below this share (and above that)."""
LAYER_RETRY = 10.0
"""Seconds after leaving out a layer before all layers are tried again."""
PAUSE_LOSS = 0.3
"""…or when its receiver reports lose this share of the video packets."""
MIN_NEED = 64_000
"""Below this many bits/s of video (cameras off) nothing is paused. A call starting is
covered by GRACE from the first tick that sees video. A higher floor (it was 200 kbit/s)
left links alone whose cameras a busy machine had turned down to about 50 kbit/s each:
bench.network saw the capped person's video queue at 0.3 fps and 5.5 % of its voices
concealed, with no pause (three such cameras need 150 kbit/s)."""
STRIKES = 2
"""Ticks in a row the link must look overloaded before video pauses."""
GRACE = 3.0
"""Seconds after a resume before the link is judged again (keyframe, queues)."""
PROBE_EVERY = 5.0
"""Seconds between probes of a paused link."""
PROBE_BYTES = 10_000
"""Size of a probe burst: it queues for 160 ms on a 500 kbit/s link."""
PROBE_TIMEOUT = 3.0
"""Seconds to wait for a probe's echo before giving it up."""
SILENT_PROBES = 3
"""Probes in a row without an echo after which the video resumes anyway: a receiver
that never echoes must not lose video for good (a still-weak link pauses it again)."""
RTT_SAMPLES = 20
"""Ordinary round-trip samples kept for the baseline (their minimum)."""
QUEUE_DELAY = 0.1
"""Seconds of round-trip time over the baseline that show the link queueing: far
above jitter (40 ± 10 ms each way moves it by about 20 ms), far below what a capped link
with a buffer shows (hundreds of ms)."""


@dataclass
class DownLink:
    """The adaptation state of one subscriber's down connection."""

    paused: bool = False
    """Video to this subscriber is paused because its link cannot carry it."""
    layer: int = TOP_LAYER
    """Highest VP8 temporal layer its link was judged to carry (sfu/layers.py)."""
    cap: int = TOP_LAYER
    """Highest layer the subscriber asked for (`receive` with `fewer_frames`: 0)."""
    since: float = 0.0
    """time.monotonic() of the last pause or resume."""
    strikes: int = 0
    falls_at_change: int = 0
    probe_track: RtpDownTrack | None = None
    probe_sent: float = 0.0
    silent: int = 0
    """Probes in a row that got no echo."""
    rtts: list[float] = field(default_factory=list)
    latest_rtt: float | None = None
    """The newest ordinary round-trip sample."""

    def tick(self, downs: Iterable[RtpDownTrack], stats: Stats, now: float | None = None) -> None:
        """One decision over the subscriber's down-tracks."""
        now = time.monotonic() if now is None else now
        tracks = list(downs)
        self._sample_rtt(tracks)
        videos = [d for d in tracks if d.kind == "video" and d.up is not None]
        if not videos:
            self.paused = False
            return
        if not self.since:
            self.since = now  # the first video: GRACE before the link is judged
        need = sum(d.up.bitrate for d in videos if d.up is not None)
        layered = any(d.up.layer_bitrates for d in videos if d.up is not None)
        if self.paused:
            for d in videos:
                d.set_paused(True)  # a track that came while paused
            self._probe(videos, need, stats, now)
            return
        for d in videos:
            d.set_layer(self.sent_layer)  # a track that came, or a changed cap
        if self.layer < TOP_LAYER and now - self.since >= LAYER_RETRY:
            self._set_layer(videos, TOP_LAYER, now)
            logger.info("down link: all temporal layers again")
            return
        if now - self.since < GRACE or need < MIN_NEED:
            self.strikes = 0
            return
        sent = sum(d.need() for d in videos)  # with the layers this subscriber gets
        feedback = [d.feedback for d in videos]
        latest = max(feedback, key=lambda f: f.remb_at)
        falls = sum(f.remb_falls for f in feedback)
        fell = falls > self.falls_at_change and latest.remb_at > self.since
        queued = self._queueing()
        estimate = (
            latest.remb
            if fell and latest.remb is not None and (queued is None or queued >= QUEUE_DELAY)
            else None
        )
        overused = estimate is not None and estimate < PAUSE_BELOW * need
        lossy = max(f.fraction_lost for f in feedback) >= PAUSE_LOSS
        fewer = (
            layered
            and self.sent_layer > 0
            and estimate is not None
            and estimate < FEWER_BELOW * sent
        )
        self.strikes = self.strikes + 1 if overused or lossy or fewer else 0
        if self.strikes >= STRIKES and not (overused or lossy):
            self._set_layer(videos, self.sent_layer - 1, now)
            stats.layer_downs += 1
            logger.info("down link a little over: temporal layers 0-%d", self.layer)
            return
        if self.strikes >= STRIKES:
            self._set(videos, True, now)
            stats.video_pauses += 1
            logger.info("down link overloaded: video paused (need %d kbit/s)", need // 1000)

    def _sample_rtt(self, tracks: list[RtpDownTrack]) -> None:
        for d in tracks:
            rtt = d.feedback.rtt
            if rtt is not None:
                d.feedback.rtt = None
                self.rtts = [*self.rtts[-(RTT_SAMPLES - 1) :], rtt]
                self.latest_rtt = rtt

    def _queueing(self) -> float | None:
        """Seconds the newest round trip took over the baseline; None without samples
        (a receiver that never echoes a report: the estimate alone decides)."""
        if self.latest_rtt is None or not self.rtts:
            return None
        return self.latest_rtt - min(self.rtts)

    def _probe(self, videos: list[RtpDownTrack], need: float, stats: Stats, now: float) -> None:
        track = self.probe_track
        if track is not None:
            echo = track.feedback.probe_rtt
            if echo is not None:
                self.probe_track = None
                self.silent = 0
                base = min(self.rtts) if self.rtts else 0.0
                extra = max(0.001, echo - base)
                carries = PROBE_BYTES * 8 / extra
                logger.debug("probe: %d kbit/s, need %d", carries // 1000, need // 1000)
                if carries >= need:
                    self._set(videos, False, now)
                    stats.video_resumes += 1
                    logger.info("down link recovered: video resumed")
                return
            if now - self.probe_sent < PROBE_TIMEOUT:
                return
            self.probe_track = None
            self.silent += 1
            if self.silent >= SILENT_PROBES:
                self.silent = 0
                self._set(videos, False, now)
                stats.video_resumes += 1
                logger.info("no probe echo: video resumed to try")
                return
        if now - max(self.probe_sent, self.since) < PROBE_EVERY:
            return
        for d in videos:
            if d.probe(PROBE_BYTES):
                self.probe_track = d
                self.probe_sent = now
                stats.probes_sent += 1
                return

    def _set_layer(self, videos: list[RtpDownTrack], layer: int, now: float) -> None:
        self.layer = layer
        self.since = now
        self.strikes = 0
        self.falls_at_change = sum(d.feedback.remb_falls for d in videos)
        for d in videos:
            d.set_layer(self.sent_layer)

    @property
    def sent_layer(self) -> int:
        """The highest layer forwarded: what the link carries, at most what was asked."""
        return min(self.layer, self.cap)

    def _set(self, videos: list[RtpDownTrack], paused: bool, now: float) -> None:
        self.paused = paused
        self.layer = TOP_LAYER
        self.since = now
        self.strikes = 0
        self.probe_track = None
        self.falls_at_change = sum(d.feedback.remb_falls for d in videos)
        for d in videos:
            if not paused:
                d.set_layer(self.sent_layer)
            d.set_paused(paused)
