"""WorkerPool: the Router's API over several SFU worker processes, one per core.

A Python process forwards on one core at most, so a server that should use all of a
machine's cores runs its SFU in W worker processes (sfu/worker.py), each with its own
slice of the UDP port range. Whole rooms are placed on one worker: packets never
cross a process boundary, only control messages do. The pool keeps where each room
lives in a Placement (by default its own DictPlacement, keyed by the room's opaque id;
the server passes none) and puts a new room on the worker with the fewest participants.

    pool = WorkerPool(settings, workers=2)
    await pool.start()            # spawns the workers, waits until each runs a Router
    pool.add_participant(room, participant, send_down_offer)    # as on Router
    answer = await pool.got_up_offer(room, participant, sdp, tracks)
    ...
    await pool.stop()

Errors come back with their class (BadSdp, UnknownParticipant, ...). set_forwarding
and request_keyframe stay synchronous and, like the Router's, ignore participants the
pool does not know; they do not wait for the worker. `stats` sums the counters the
workers push about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, Protocol

from sfu import errors
from sfu.conn import DownTrackInfo, TrackInfo
from sfu.settings import MediaSettings
from sfu.stats import Stats
from sfu.worker import worker_main

logger = logging.getLogger(__name__)

SendDownOffer = Callable[[str, list[DownTrackInfo]], Awaitable[None]]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class Placement(Protocol):
    """Which worker each room lives on (the server's table, keyed by room id)."""

    def worker_for(self, room: str) -> int | None:
        """The worker the room was placed on, or None."""

    def place(self, room: str, worker: int) -> None:
        """Records that room lives on worker."""

    def release(self, room: str) -> None:
        """The room has no participant left on its worker."""


class DictPlacement:
    """A placement table in this process's memory."""

    def __init__(self) -> None:
        self.rooms: dict[str, int] = {}

    def worker_for(self, room: str) -> int | None:
        return self.rooms.get(room)

    def place(self, room: str, worker: int) -> None:
        self.rooms[room] = worker

    def release(self, room: str) -> None:
        self.rooms.pop(room, None)


def port_slices(settings: MediaSettings, workers: int) -> list[MediaSettings]:
    """Each worker's settings: the port range cut into workers equal slices."""
    span = settings.port_max - settings.port_min + 1
    width = span // workers
    if width < 1:
        raise ValueError("the media port range has fewer ports than SFU workers")
    return [
        replace(
            settings,
            port_min=settings.port_min + k * width,
            port_max=settings.port_min + (k + 1) * width - 1,
        )
        for k in range(workers)
    ]


@dataclass(eq=False)
class _Worker:
    index: int
    settings: MediaSettings
    process: Any = None
    conn: Connection | None = None
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    participants: int = 0
    ready: asyncio.Future[None] | None = None
    alive: bool = False


class WorkerPool:
    """The SFU in W worker processes, with the Router's public API."""

    def __init__(
        self,
        settings: MediaSettings,
        workers: int,
        placement: Placement | None = None,
        use_uvloop: bool = False,
    ) -> None:
        self.settings = settings
        self.placement: Placement = placement if placement is not None else DictPlacement()
        self._use_uvloop = use_uvloop
        self._workers = [_Worker(k, s) for k, s in enumerate(port_slices(settings, workers))]
        self._members: dict[str, dict[str, SendDownOffer]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def workers(self) -> int:
        return len(self._workers)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawns every worker and waits until each runs its Router."""
        loop = asyncio.get_running_loop()
        ctx = mp.get_context("spawn")
        for w in self._workers:
            parent, child = ctx.Pipe()
            w.process = ctx.Process(
                target=worker_main,
                args=(child, w.settings, self._use_uvloop),
                name=f"kreis-sfu-{w.index}",
                daemon=True,
            )
            w.process.start()
            child.close()
            w.conn = parent
            w.ready = loop.create_future()
            w.alive = True
            loop.add_reader(parent.fileno(), self._readable, w)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.ready for w in self._workers if w.ready)), START_TIMEOUT
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Closes every connection (each worker stops its Router) and ends the workers."""
        for w in self._workers:
            if w.alive:
                with contextlib.suppress(errors.SfuError):
                    await asyncio.wait_for(self._request(w, "stop"), STOP_TIMEOUT)
        loop = asyncio.get_running_loop()
        for w in self._workers:
            self._lost(w)
            if w.process is not None:
                await loop.run_in_executor(None, w.process.join, STOP_TIMEOUT)
                if w.process.is_alive():
                    w.process.terminate()
        for task in list(self._tasks):
            task.cancel()
        self._members.clear()

    # --- the Router's API ------------------------------------------------------------

    def add_participant(self, room: str, participant: str, send_down_offer: SendDownOffer) -> None:
        members = self._members.setdefault(room, {})
        w = self._worker_for(room, create=True)
        if participant not in members:
            w.participants += 1
        members[participant] = send_down_offer
        self._notify(w, "add_participant", room, participant)

    async def remove_participant(self, room: str, participant: str) -> None:
        members = self._members.get(room)
        if members is None or participant not in members:
            return
        del members[participant]
        w = self._worker_for(room)
        w.participants -= 1
        if not members:
            del self._members[room]
            self.placement.release(room)
        await self._request(w, "remove_participant", room, participant)

    async def got_up_offer(
        self, room: str, participant: str, sdp: str, tracks: list[TrackInfo]
    ) -> str:
        w = self._known(room, participant)
        return str(await self._request(w, "got_up_offer", room, participant, sdp, list(tracks)))

    async def got_down_answer(self, room: str, participant: str, sdp: str) -> None:
        w = self._known(room, participant)
        await self._request(w, "got_down_answer", room, participant, sdp)

    def set_forwarding(self, room: str, participant: str, source: str, enabled: bool) -> None:
        # Like Router: unknown participants are ignored (app calls this for every member).
        if participant in self._members.get(room, {}):
            w = self._worker_for(room)
            self._notify(w, "set_forwarding", room, participant, source, enabled)

    def set_receive(self, room: str, participant: str, kinds: frozenset[str]) -> None:
        if participant in self._members.get(room, {}):
            self._notify(self._worker_for(room), "set_receive", room, participant, kinds)

    def request_keyframe(self, room: str, participant: str) -> None:
        if participant in self._members.get(room, {}):
            self._notify(self._worker_for(room), "request_keyframe", room, participant)

    @property
    def stats(self) -> Stats:
        """The sum of the counters the workers last pushed (about a second old)."""
        return _sum_stats([w.stats for w in self._workers])

    async def fetch_stats(self) -> Stats:
        """The sum of every worker's counters, asked for now."""
        for w in self._workers:
            if w.alive:
                w.stats = await self._request(w, "stats")
        return self.stats

    def worker_of(self, room: str) -> int | None:
        """Index of the worker a room lives on (for tests and metrics)."""
        return self.placement.worker_for(room)

    def worker_pids(self) -> list[int]:
        return [int(w.process.pid) for w in self._workers if w.process is not None]

    # --- internals -------------------------------------------------------------------

    def _known(self, room: str, participant: str) -> _Worker:
        if participant not in self._members.get(room, {}):
            raise errors.UnknownParticipant("unknown room or participant")
        return self._worker_for(room)

    def _worker_for(self, room: str, create: bool = False) -> _Worker:
        index = self.placement.worker_for(room)
        if index is None or not 0 <= index < len(self._workers):
            if not create:
                raise errors.UnknownParticipant("unknown room or participant")
            live = [w for w in self._workers if w.alive] or self._workers
            index = min(live, key=lambda w: (w.participants, w.index)).index
            self.placement.place(room, index)
        return self._workers[index]

    def _notify(self, w: _Worker, method: str, *args: Any) -> None:
        if not w.alive or w.conn is None:
            logger.warning("SFU worker %d is not running", w.index)
            return
        try:
            w.conn.send((0, method, args))
        except (OSError, ValueError):
            self._lost(w)

    async def _request(self, w: _Worker, method: str, *args: Any) -> Any:
        if not w.alive or w.conn is None:
            raise errors.SfuError(f"SFU worker {w.index} is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        w.pending[request_id] = future
        try:
            w.conn.send((request_id, method, args))
        except (OSError, ValueError):
            self._lost(w)
        return await future

    def _readable(self, w: _Worker) -> None:
        assert w.conn is not None
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            if w.alive:
                logger.error("SFU worker %d exited", w.index)
            self._lost(w)
            return
        kind = msg[0]
        if kind == "reply":
            _, request_id, ok, result = msg
            future = w.pending.pop(request_id, None)
            if future is not None and not future.done():
                if ok:
                    future.set_result(result)
                else:
                    future.set_exception(_error(*result))
        elif kind == "down_offer":
            _, room, participant, sdp, tracks = msg
            callback = self._members.get(room, {}).get(participant)
            if callback is not None:
                task = asyncio.create_task(_deliver(callback, sdp, tracks))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif kind == "stats":
            w.stats = msg[1]
        elif kind == "ready" and w.ready is not None and not w.ready.done():
            w.ready.set_result(None)

    def _lost(self, w: _Worker) -> None:
        if w.conn is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(w.conn.fileno())
            with contextlib.suppress(Exception):
                w.conn.close()
        w.conn = None
        w.alive = False
        for future in w.pending.values():
            if not future.done():
                future.set_exception(errors.SfuError(f"SFU worker {w.index} is gone"))
        w.pending.clear()
        if w.ready is not None and not w.ready.done():
            w.ready.set_exception(errors.SfuError(f"SFU worker {w.index} did not start"))


async def _deliver(callback: SendDownOffer, sdp: str, tracks: list[DownTrackInfo]) -> None:
    try:
        await callback(sdp, tracks)
    except Exception:
        logger.exception("delivering a down offer failed")


def _error(name: str, message: str) -> errors.SfuError:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.SfuError):
        if cls is errors.PortRangeExhausted:
            return errors.SfuError(message)
        return cls(message)
    return errors.SfuError(message)


def _sum_stats(snapshots: list[dict[str, int]]) -> Stats:
    total = Stats()
    for snap in snapshots:
        for key, value in snap.items():
            if isinstance(getattr(total, key, None), int):
                setattr(total, key, getattr(total, key) + value)
    return total
