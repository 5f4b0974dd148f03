"""The SFU's public face: rooms of participants, their up and down connections.

The server (app/) decides who may publish and subscribe; the router only knows opaque
room and participant ids. Every participant receives every track of every other
participant of its room that is of a kind it asked for (`set_receive`: audio, video,
screen; all by default). When that set changes the router builds a new down offer
and hands it to the server through the participant's send_down_offer callback;
renegotiations of one participant are serialised (a change during an outstanding
offer leads to a new offer once the answer is in).

Every downlink.TICK the router lets each subscriber's DownLink judge that subscriber's
own link (sfu/downlink.py): video to it pauses when the link cannot carry it, and
resumes when a probe shows it can again. No subscriber's link lowers another's media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sfu import downlink
from sfu.conn import DownTrackInfo, TrackInfo
from sfu.downlink import DownLink
from sfu.errors import BadSdp, UnknownParticipant
from sfu.layers import TOP_LAYER
from sfu.peer import DownConnection, DownKey, UpConnection
from sfu.settings import MediaSettings
from sfu.stats import Stats
from sfu.uptrack import PayloadTap, RtpUpTrack

logger = logging.getLogger(__name__)

ANSWER_TIMEOUT = 20.0
"""Seconds after which a change re-offers even though the last offer is unanswered."""

RECEIVE_ALL = frozenset(("audio", "video", "screen"))
"""Every kind a participant can ask for with `Router.set_receive`."""

SendDownOffer = Callable[[str, list[DownTrackInfo]], Awaitable[None]]


@dataclass(eq=False)
class _Participant:
    room: str
    id: str
    send_down_offer: SendDownOffer
    up: UpConnection | None = None
    down: DownConnection | None = None
    offer_outstanding: bool = False
    """A down offer was sent (or is being built) and its answer has not arrived."""
    offer_started: float = 0.0
    """time.monotonic() when the outstanding offer was started."""
    dirty: bool = False
    """The wanted tracks changed while an offer was outstanding."""
    up_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    muted: set[str] = field(default_factory=set)
    """Sources not to forward, also for tracks published after the mute."""
    link: DownLink = field(default_factory=DownLink)
    """Whether this participant's own down link carries its video."""
    receive: frozenset[str] = RECEIVE_ALL
    """What this participant wants sent (see `receive_kind`)."""


class Router:
    """Rooms, participants and the packets between them."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.stats = Stats()
        """Counters and gauges."""
        self._rooms: dict[str, dict[str, _Participant]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self.payload_tap: PayloadTap | None = None
        """Tests only (the test harness sets it, tests/server_hooks.py): called with
        (participant, kind, payload) for every forwarded packet of tracks published
        after it is set. None (the default) costs one attribute check per packet."""

    async def start(self) -> None:
        self._running = True
        task = asyncio.create_task(self._judge_links())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Closes every peer connection and forgets every room."""
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for room in list(self._rooms):
            for participant in list(self._rooms.get(room, {})):
                await self.remove_participant(room, participant)
        self._update_gauges()

    # --- membership ----------------------------------------------------------------

    def add_participant(self, room: str, participant: str, send_down_offer: SendDownOffer) -> None:
        """Adds participant to room; it will receive every other participant's tracks."""
        members = self._rooms.setdefault(room, {})
        if participant in members:
            members[participant].send_down_offer = send_down_offer
            return
        p = _Participant(room, participant, send_down_offer)
        members[participant] = p
        self._update_gauges()
        self._want_offer(p)

    async def remove_participant(self, room: str, participant: str) -> None:
        """Closes the participant's connections; the others stop receiving its tracks."""
        members = self._rooms.get(room)
        p = members.pop(participant, None) if members else None
        if p is None:
            return
        if not members:
            del self._rooms[room]
        had_tracks = p.up is not None and bool(p.up.tracks)
        for conn in (p.up, p.down):
            if conn is not None:
                try:
                    await conn.close()
                except Exception:
                    logger.exception("closing a peer connection failed")
        p.up = p.down = None
        self._update_gauges()
        if had_tracks and members:
            for other in members.values():
                self._want_offer(other)

    # --- signalling ----------------------------------------------------------------

    async def got_up_offer(
        self, room: str, participant: str, sdp: str, tracks: list[TrackInfo]
    ) -> str:
        """Answers participant's up offer (complete SDP); raises BadSdp."""
        p = self._get(room, participant)
        _check_tracks(tracks)
        async with p.up_lock:
            fresh = p.up is None
            if p.up is None:
                p.up = UpConnection(participant, self.settings, self.stats)
            up = p.up
            try:
                answer, added, removed = await up.got_offer(sdp, tracks)
            except BadSdp:
                if fresh and p.up is up:
                    p.up = None
                    await up.close()
                raise
        for track in added:
            track.payload_tap = self.payload_tap
            if track.info.source in p.muted:
                track.set_forwarding(False)
        self._update_gauges()
        if added or removed:
            for other in self._rooms.get(room, {}).values():
                if other is not p:
                    self._want_offer(other)
        return answer

    async def got_down_answer(self, room: str, participant: str, sdp: str) -> None:
        """Takes participant's answer to the last down offer; raises BadSdp."""
        p = self._get(room, participant)
        if p.down is None:
            raise BadSdp("no down offer was sent")
        try:
            await p.down.got_answer(sdp)
        finally:
            p.offer_outstanding = False
            if p.dirty:
                self._want_offer(p)
        self._update_gauges()

    def set_forwarding(self, room: str, participant: str, source: str, enabled: bool) -> None:
        """Mute (False) or unmute (True) every track of participant from source, including
        tracks it publishes later. Unknown participants are ignored."""
        p = self._rooms.get(room, {}).get(participant)
        if p is None:
            return
        if enabled:
            p.muted.discard(source)
        else:
            p.muted.add(source)
        if p.up is not None:
            for up in p.up.tracks.values():
                if up.info.source == source:
                    up.set_forwarding(enabled)

    def set_receive(
        self, room: str, participant: str, kinds: frozenset[str], fewer_frames: bool = False
    ) -> None:
        """Forward to participant only tracks of these kinds (`receive_kind`): an
        audio-only participant gets a down offer without any video m-line; with
        fewer_frames, cameras only in their lowest temporal layer. Unknown participants
        are ignored."""
        p = self._rooms.get(room, {}).get(participant)
        if p is None:
            return
        p.link.cap = 0 if fewer_frames else TOP_LAYER
        if p.receive != kinds:
            p.receive = frozenset(kinds) & RECEIVE_ALL
            self._want_offer(p)

    def request_keyframe(self, room: str, participant: str) -> None:
        """Asks participant for a keyframe on each of its video tracks (throttled).
        Unknown participants (no media yet) are ignored."""
        p = self._rooms.get(room, {}).get(participant)
        if p is not None and p.up is not None:
            for up in p.up.tracks.values():
                up.request_keyframe()

    # --- internals -----------------------------------------------------------------

    async def _judge_links(self) -> None:
        while self._running:
            await asyncio.sleep(downlink.TICK)
            self._judge_links_once()

    def _judge_links_once(self) -> None:
        # Its own frame, so no participant stays referenced while the loop sleeps
        # (a participant must be gone from memory once it left).
        for members in list(self._rooms.values()):
            for p in list(members.values()):
                if p.down is None:
                    continue
                try:
                    p.link.tick(p.down.tracks.values(), self.stats)
                except Exception:
                    logger.exception("judging a down link failed")

    def _get(self, room: str, participant: str) -> _Participant:
        p = self._rooms.get(room, {}).get(participant)
        if p is None:
            raise UnknownParticipant("unknown room or participant")
        return p

    def _desired(self, p: _Participant) -> dict[DownKey, RtpUpTrack]:
        desired: dict[DownKey, RtpUpTrack] = {}
        for other in self._rooms.get(p.room, {}).values():
            if other is p or other.up is None:
                continue
            for up in other.up.tracks.values():
                if receive_kind(up.info) not in p.receive:
                    continue
                desired[(other.id, up.info.source, up.info.kind)] = up
        return desired

    def _want_offer(self, p: _Participant) -> None:
        if not self._running:
            return
        if p.offer_outstanding:
            if time.monotonic() - p.offer_started < ANSWER_TIMEOUT:
                p.dirty = True
                return
            # A client that never answered must not block its media forever.
            logger.info("down answer overdue; offering again")
        p.offer_outstanding = True
        p.offer_started = time.monotonic()
        p.dirty = False
        task = asyncio.create_task(self._send_offer(p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_offer(self, p: _Participant) -> None:
        try:
            if self._rooms.get(p.room, {}).get(p.id) is not p:
                p.offer_outstanding = False
                return
            desired = self._desired(p)
            down = p.down
            if down is None and not desired:
                p.offer_outstanding = False
                return
            if down is not None and set(down.tracks) == set(desired):
                # Same tracks, maybe from new up-tracks (a publisher switched its camera):
                # feed the existing transceivers, no renegotiation needed.
                for key, up in desired.items():
                    down.tracks[key].attach(up)
                p.offer_outstanding = False
                return
            if down is None:
                down = p.down = DownConnection(p.id, self.settings, self.stats)
            sdp, infos = await down.make_offer(desired)
            self._update_gauges()
            await p.send_down_offer(sdp, infos)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("building or sending a down offer failed")
            p.offer_outstanding = False

    def _update_gauges(self) -> None:
        s = self.stats
        s.rooms = len(self._rooms)
        s.participants = sum(len(m) for m in self._rooms.values())
        s.up_tracks = s.down_tracks = 0
        for members in self._rooms.values():
            for p in members.values():
                if p.up is not None:
                    s.up_tracks += len(p.up.tracks)
                if p.down is not None:
                    s.down_tracks += len(p.down.tracks)


def receive_kind(info: TrackInfo) -> str:
    """A track as a participant asks for it: "screen" (a share, with its sound),
    "audio" (a microphone) or "video" (a camera)."""
    return "screen" if info.source == "screen" else info.kind


def _check_tracks(tracks: list[TrackInfo]) -> None:
    seen: set[str] = set()
    for info in tracks:
        if info.kind not in ("audio", "video") or info.source not in ("mic", "camera", "screen"):
            raise BadSdp("unknown track kind or source")
        if info.mid in seen:
            raise BadSdp("duplicate mid")
        seen.add(info.mid)
