"""Glue between the rooms and the SFU: who may publish and subscribe. (The
`up_offer` / `down_answer` / `keyframe` handlers are in `app/handlers.py`.)

The SFU (`sfu/`) knows only opaque room and participant ids. This module tells it when
a participant is admitted (subscribe to everyone else) or leaves, and which sources to
stop forwarding when a participant mutes. Lobby entrants are never added, so they
cannot receive any media. When an SFU worker process dies and runs again, every
participant it held is told `media_restart` and offers afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from app import protocol as p

if TYPE_CHECKING:
    from app.config import Config
    from app.rooms import Member, Room
    from sfu.memory import HeapTrimmer

log = logging.getLogger(__name__)

TRIM_TICK = 1.0
"""Seconds between asking the in-process router's heap trimmer whether it is time."""


class Media:
    """Owns the SFU for this server process: an in-process Router (`[media] workers =
    1`) or a WorkerPool of that many processes, which places whole rooms on workers."""

    def __init__(self, config: Config) -> None:
        from sfu import MediaSettings, Router

        m = config.media
        settings = MediaSettings(
            bind_address=m.bind_address,
            advertised_address=m.advertised_address,
            port_min=m.port_min,
            port_max=m.port_max,
        )
        self.router: Any
        self._peers: dict[tuple[str, str], Any] = {}
        """(room id, member id) → the member's connection, for media_restart."""
        if m.workers > 1:
            from sfu.pool import WorkerPool

            # Rooms are placed on workers by the pool's own table (sfu.pool.Placement);
            # a cluster would hand it a shared one.
            self.router = WorkerPool(
                settings, m.workers, use_uvloop=_uvloop_wanted(), on_reset=self._reset
            )
        else:
            self.router = Router(settings)
        self.trimmer: HeapTrimmer | None = None
        """With the router in this process: gives the heap's free pages back once
        participants have left, as an SFU worker process does (sfu/memory.py)."""
        if m.workers <= 1:
            from sfu.memory import HeapTrimmer

            self.trimmer = HeapTrimmer()
        self._trim_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.router.start()
        if self.trimmer is not None:
            self._trim_task = asyncio.create_task(self._trim_when_idle(self.trimmer))

    async def stop(self) -> None:
        if self._trim_task is not None:
            self._trim_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._trim_task
            self._trim_task = None
        await self.router.stop()
        self._peers.clear()

    async def _trim_when_idle(self, trimmer: HeapTrimmer) -> None:
        while True:
            await asyncio.sleep(TRIM_TICK)
            try:
                trimmer.tick(self.router.stats.participants)
            except Exception:
                log.exception("trimming the heap failed")

    @property
    def healthy(self) -> bool:
        """False while an SFU worker is down (its participants have no media)."""
        return bool(getattr(self.router, "healthy", True))

    def _reset(self, room_id: str, member_id: str) -> None:
        peer = self._peers.get((room_id, member_id))
        if peer is not None:
            peer.send(p.MediaRestart())

    def admitted(self, room: Room, member: Member) -> None:
        peer = member.peer
        self._peers[(room.id, member.id)] = peer

        async def send_down_offer(sdp: str, tracks: list[Any]) -> None:
            peer.send(p.DownOffer(sdp, [dataclasses.asdict(t) for t in tracks]))

        self.router.add_participant(room.id, member.id, send_down_offer)
        wanted = getattr(peer, "receive", None)
        fewer = bool(getattr(peer, "fewer_frames", False))
        if wanted is not None or fewer:
            # Said before admission: it holds before the first down offer is built.
            kinds = wanted if wanted is not None else frozenset({"audio", "video", "screen"})
            self.router.set_receive(room.id, member.id, kinds, fewer)

    def receive(
        self, room: Room, member: Member, kinds: frozenset[str], fewer_frames: bool = False
    ) -> None:
        self.router.set_receive(room.id, member.id, kinds, fewer_frames)

    async def left(self, room: Room, member: Member) -> None:
        from sfu import UnknownParticipant

        self._peers.pop((room.id, member.id), None)
        # A participant whose media never started is unknown to the SFU: nothing to undo.
        with contextlib.suppress(UnknownParticipant):
            await self.router.remove_participant(room.id, member.id)
        if self.trimmer is not None:
            self.trimmer.left()

    def media_state(self, room: Room, member: Member) -> None:
        for source, on in (
            ("mic", member.mic),
            ("camera", member.camera),
            ("screen", member.screen),
        ):
            self.router.set_forwarding(room.id, member.id, source, on)

    def stats(self) -> dict[str, int]:
        s = self.router.stats
        return {
            "forwarded_packets": int(getattr(s, "forwarded_packets", 0)),
            "forwarded_bytes": int(getattr(s, "forwarded_bytes", 0)),
        }


def _uvloop_wanted() -> bool:
    # SFU workers run on uvloop when it is installed (the `bench` extra; ~40 % more
    # packets per CPU-second, docs/performance.md); KREIS_UVLOOP=0 turns it off. It
    # is never required: a worker falls back to asyncio's own loop.
    import os

    return os.environ.get("KREIS_UVLOOP", "1") != "0"
