"""The two peer connections of a participant: up (it publishes) and down (it receives).

Each wraps one aiortc RTCPeerConnection configured for the SFU: one bundled
transport, ICE on the configured address and port range, codecs restricted to
Opus, VP8 and H.264, and no decoder or encoder anywhere (aiortc_private hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy

from sfu import aiortc_private as private
from sfu.conn import DownTrackInfo, TrackInfo
from sfu.downtrack import RtpDownTrack
from sfu.errors import BadSdp, SfuError
from sfu.sdpcheck import check_down_answer, check_up_offer
from sfu.settings import MediaSettings
from sfu.stats import Stats
from sfu.uptrack import RtpUpTrack

logger = logging.getLogger(__name__)

FORWARDED_MIME_TYPES = ("audio/opus", "video/vp8", "video/h264")
"""The only codecs the SFU negotiates (no RTX: retransmissions reuse the SSRC)."""
RTCP_INTERVAL = 1.0
"""Mean seconds between SRs / REMBs (randomised ±50 % as RFC 3550 asks)."""

DownKey = tuple[str, str, str]
"""(publisher, source, kind) — what a subscriber receives, independent of mids."""


def _allowed(codec: Any) -> bool:
    return str(codec.mimeType).lower() in FORWARDED_MIME_TYPES


def codec_preferences(kind: str) -> list[Any]:
    """aiortc's capabilities for kind restricted to the forwarded codecs."""
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if _allowed(c)]


def msid_token(participant: str) -> str:
    """The publisher's id if it can stand in an SDP msid (RFC 8830 token, short), else
    a stable digest of it: the SDP must stay valid whatever ids app/ chooses."""
    if re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", participant):
        return participant
    return "p" + hashlib.sha256(participant.encode("utf-8")).hexdigest()[:20]


def _configuration(settings: MediaSettings) -> RTCConfiguration:
    # An explicit (normally empty) list: aiortc's default would be a public STUN server.
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server) if isinstance(server, str) else server
            for server in settings.ice_servers
        ],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


class _Connection:
    """What up and down have in common: the aiortc peer and a periodic RTCP task."""

    def __init__(self, participant: str, settings: MediaSettings, stats: Stats) -> None:
        self.participant = participant
        self.settings = settings
        self.stats = stats
        self.pc = RTCPeerConnection(_configuration(settings))
        self._task: asyncio.Task[None] | None = None

    def _configure_ice(self) -> None:
        s = self.settings
        private.configure_ice(self.pc, s.bind_address, s.advertised_address, s.port_min, s.port_max)

    def _start_rtcp(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run_rtcp())

    async def _run_rtcp(self) -> None:
        while True:
            await asyncio.sleep(RTCP_INTERVAL * (0.5 + random.random()))
            try:
                self._rtcp_tick()
            except Exception:
                logger.exception("RTCP tick failed")

    def _rtcp_tick(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.pc.close()
        except Exception as exc:  # closing must go on for the other connections
            logger.warning("closing a peer connection failed: %s", type(exc).__name__)


class UpConnection(_Connection):
    """The connection a participant publishes on (it offers, the SFU answers)."""

    def __init__(self, participant: str, settings: MediaSettings, stats: Stats) -> None:
        super().__init__(participant, settings, stats)
        self.tracks: dict[str, RtpUpTrack] = {}
        """Up-tracks by mid."""
        self._by_receiver: dict[int, RtpUpTrack] = {}
        self._tapped: set[int] = set()
        self._forget_sinks: list[Callable[[], None]] = []

    async def got_offer(
        self, sdp: str, tracks: list[TrackInfo]
    ) -> tuple[str, list[RtpUpTrack], list[RtpUpTrack]]:
        """Answers an up offer; returns (answer SDP, added tracks, removed tracks)."""
        check_up_offer(sdp, tracks)  # BadSdp before aiortc sees anything
        # From here on the offer is one the SFU can use: a failure is the SFU's own
        # (internal), never the client's bad_sdp.
        offer = RTCSessionDescription(sdp=sdp, type="offer")
        await private.applying(self.pc, self.pc.setRemoteDescription(offer))
        transceivers = {t.mid: t for t in self.pc.getTransceivers() if t.mid is not None}
        for info in tracks:
            t = transceivers.get(info.mid)
            if t is None or t.kind != info.kind:
                raise SfuError("aiortc did not make a transceiver for a checked m-line")
        for t in transceivers.values():
            private.restrict_codecs(t, _allowed)
            if not private.negotiated_codecs(t):
                t.direction = "inactive"
        self._configure_ice()
        answer = await self.pc.createAnswer()
        await private.applying(self.pc, self.pc.setLocalDescription(answer))

        added: list[RtpUpTrack] = []
        wanted = {info.mid: info for info in tracks}
        for mid, info in wanted.items():
            t = transceivers[mid]
            codecs = private.negotiated_codecs(t)
            if not codecs:
                continue
            extensions = private.negotiated_extensions(t)
            self._tap(t)
            up = self.tracks.get(mid)
            if up is not None and up.info == info:
                up.set_parameters(codecs, extensions)
                continue
            if up is not None:
                self._drop(mid)
            up = RtpUpTrack(
                self.participant,
                info,
                codecs,
                extensions,
                private.writer_for(t),
                private.receiver_rtcp_ssrc(t),
                self.stats,
            )
            self.tracks[mid] = up
            self._by_receiver[id(t.receiver)] = up
            private.mute_receiver(t.receiver, up.on_rtcp)
            added.append(up)
        removed = [self._drop(mid) for mid in list(self.tracks) if mid not in wanted]
        self._start_rtcp()
        answer_sdp: str = self.pc.localDescription.sdp
        return answer_sdp, added, removed

    def _tap(self, transceiver: RTCRtpTransceiver) -> None:
        dtls = private.dtls_of(transceiver)
        if id(dtls) in self._tapped:
            return
        self._tapped.add(id(dtls))

        def route(receiver: Any) -> Any:
            up = self._by_receiver.get(id(receiver))
            return up.on_rtp if up is not None else None

        self._forget_sinks.append(private.tap_rtp(dtls, route))
        if self.settings.test_drop_rate:
            private.simulate_inbound_loss(dtls, self.settings.test_drop_rate, self._dropped)

    def _dropped(self) -> None:
        self.stats.dropped_packets += 1
        self.stats.dropped_up_packets += 1

    def _drop(self, mid: str) -> RtpUpTrack:
        up = self.tracks.pop(mid)
        for forget in self._forget_sinks:
            forget()  # packets of the dropped track must not reach it any more
        for key, value in list(self._by_receiver.items()):
            if value is up:
                del self._by_receiver[key]
        up.close()
        return up

    def _rtcp_tick(self) -> None:
        for up in self.tracks.values():
            up.send_feedback()

    async def close(self) -> None:
        for mid in list(self.tracks):
            self._drop(mid)
        await super().close()


class DownConnection(_Connection):
    """The connection a participant receives on (the SFU offers, it answers)."""

    def __init__(self, participant: str, settings: MediaSettings, stats: Stats) -> None:
        super().__init__(participant, settings, stats)
        self.tracks: dict[DownKey, RtpDownTrack] = {}
        """Live down-tracks by (publisher, source, kind)."""
        self._offered: list[tuple[str, str]] = []
        """(kind, mid) of every m-line of the last offer, in order."""

    async def make_offer(
        self, desired: dict[DownKey, RtpUpTrack]
    ) -> tuple[str, list[DownTrackInfo]]:
        """Brings the down-tracks to desired and returns (offer SDP, track list)."""
        for key in [k for k in self.tracks if k not in desired]:
            gone = self.tracks.pop(key)
            gone.detach()
            # aiortc keeps m-lines forever; an inactive one carries nothing.
            gone.transceiver.direction = "inactive"
        for key, up in desired.items():
            down = self.tracks.get(key)
            if down is not None:
                down.attach(up)  # a publisher's new up-track for the same source
                continue
            publisher, source, kind = key
            t = self.pc.addTransceiver(kind, direction="sendonly")
            t.setCodecPreferences(codec_preferences(kind))
            stream = msid_token(publisher)
            private.set_stream_ids(t.sender, stream, f"{stream}-{source}-{kind}")
            info = DownTrackInfo(mid="", participant=publisher, kind=kind, source=source)
            down = RtpDownTrack(
                self.participant, info, t, self.stats, self.settings.test_down_drop_rate
            )
            down.attach(up)
            self.tracks[key] = down
        self._configure_ice()
        offer = await self.pc.createOffer()
        await private.applying(self.pc, self.pc.setLocalDescription(offer))
        offer_sdp: str = self.pc.localDescription.sdp
        self._offered = [(m.kind, m.rtp.muxId) for m in private.parse_sdp(offer_sdp).media]
        infos = []
        for down in self.tracks.values():
            i = down.info
            info = DownTrackInfo(
                mid=str(down.transceiver.mid),
                participant=i.participant,
                kind=i.kind,
                source=i.source,
            )
            down.info = info
            infos.append(info)
        return offer_sdp, infos

    async def got_answer(self, sdp: str) -> None:
        if self.pc.signalingState != "have-local-offer":
            raise BadSdp("no down offer is outstanding")
        check_down_answer(sdp, self._offered)  # BadSdp before aiortc sees anything
        answer = RTCSessionDescription(sdp=sdp, type="answer")
        await private.applying(self.pc, self.pc.setRemoteDescription(answer))
        for down in self.tracks.values():
            down.negotiated()
        self._start_rtcp()

    def _rtcp_tick(self) -> None:
        for down in self.tracks.values():
            down.send_sender_report()

    async def close(self) -> None:
        for down in self.tracks.values():
            down.detach()
        self.tracks.clear()
        await super().close()
