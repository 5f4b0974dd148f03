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

A worker that dies (a crash, SIGKILL, the OOM killer) is started again with the same
port slice; its rooms' participants are added to the new worker (with their mutes)
and `on_reset(room, participant)` tells the server, which asks each client to offer
again: their peer connections died with the worker. `healthy` is False from the
death until the new worker runs. The pipes are read and written without blocking
the event loop (sfu/channel.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sfu import errors
from sfu.channel import Channel
from sfu.conn import DownTrackInfo, TrackInfo
from sfu.settings import MediaSettings
from sfu.stats import Stats
from sfu.worker import worker_main

logger = logging.getLogger(__name__)

SendDownOffer = Callable[[str, list[DownTrackInfo]], Awaitable[None]]
OnReset = Callable[[str, str], None]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
RESTART_DELAYS = (0.0, 0.5, 2.0, 5.0, 15.0)
"""Seconds before restarting a dead worker: the first restart is at once, and a worker
that keeps dying within STABLE_AFTER seconds of its start waits longer each time."""
STABLE_AFTER = 30.0


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
    channel: Channel | None = None
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    participants: int = 0
    ready: asyncio.Future[None] | None = None
    alive: bool = False
    started: float = 0.0
    """time.monotonic() of the last start."""
    quick_deaths: int = 0
    """Deaths in a row within STABLE_AFTER seconds of starting."""


class WorkerPool:
    """The SFU in W worker processes, with the Router's public API."""

    def __init__(
        self,
        settings: MediaSettings,
        workers: int,
        placement: Placement | None = None,
        use_uvloop: bool = False,
        on_reset: OnReset | None = None,
    ) -> None:
        self.settings = settings
        self.on_reset = on_reset
        """Called with (room, participant) for each participant whose connections died
        with a worker, once the new worker runs: the client must offer again."""
        self.placement: Placement = placement if placement is not None else DictPlacement()
        self._use_uvloop = use_uvloop
        self._workers = [_Worker(k, s) for k, s in enumerate(port_slices(settings, workers))]
        self._members: dict[str, dict[str, SendDownOffer]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwarding: dict[tuple[str, str], dict[str, bool]] = {}
        """(room, participant) → source → enabled, replayed to a restarted worker."""
        self._stopping = False

    @property
    def workers(self) -> int:
        return len(self._workers)

    @property
    def healthy(self) -> bool:
        """Every worker runs (False while a dead one is being restarted)."""
        return not self._stopping and all(w.alive for w in self._workers)

    def worker_health(self) -> list[bool]:
        """Whether each worker runs, by index."""
        return [w.alive for w in self._workers]

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawns every worker and waits until each runs its Router."""
        self._stopping = False
        try:
            await asyncio.gather(*(self._spawn(w) for w in self._workers))
        except BaseException:
            await self.stop()
            raise

    async def _spawn(self, w: _Worker) -> None:
        """Starts w's process and waits until it runs its Router."""
        loop = asyncio.get_running_loop()
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        w.process = ctx.Process(
            target=worker_main,
            args=(child, w.settings, self._use_uvloop),
            name=f"kreis-sfu-{w.index}",
            daemon=True,
        )
        # Spawning forks and execs a fresh interpreter: off the event loop.
        await loop.run_in_executor(None, w.process.start)
        child.close()
        w.channel = Channel(parent, lambda msg: self._got(w, msg), lambda: self._closed(w))
        await w.channel.open()
        w.ready = loop.create_future()
        w.started = time.monotonic()
        await asyncio.wait_for(w.ready, START_TIMEOUT)
        w.alive = True

    async def stop(self) -> None:
        """Closes every connection (each worker stops its Router) and ends the workers."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for w in self._workers:
            if w.alive:
                with contextlib.suppress(errors.SfuError, asyncio.TimeoutError):
                    await asyncio.wait_for(self._request(w, "stop"), STOP_TIMEOUT)
        loop = asyncio.get_running_loop()
        for w in self._workers:
            self._lost(w)
            if w.process is not None:
                await loop.run_in_executor(None, w.process.join, STOP_TIMEOUT)
                if w.process.is_alive():
                    w.process.terminate()
            if w.channel is not None:
                await w.channel.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._members.clear()
        self._forwarding.clear()

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
        self._forwarding.pop((room, participant), None)
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
            self._forwarding.setdefault((room, participant), {})[source] = enabled
            w = self._worker_for(room)
            self._notify(w, "set_forwarding", room, participant, source, enabled)

    def set_receive(
        self, room: str, participant: str, kinds: frozenset[str], fewer_frames: bool = False
    ) -> None:
        if participant in self._members.get(room, {}):
            w = self._worker_for(room)
            self._notify(w, "set_receive", room, participant, kinds, fewer_frames)

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
        if not w.alive or w.channel is None:
            # While a dead worker restarts: mutes are replayed to the new one, the rest
            # (keyframe requests, adds) is redone when the participants offer again.
            logger.debug("SFU worker %d is not running", w.index)
            return
        if not w.channel.send((0, method, args)):
            self._died(w)

    async def _request(self, w: _Worker, method: str, *args: Any) -> Any:
        if not w.alive or w.channel is None:
            raise errors.SfuError(f"SFU worker {w.index} is not running")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        w.pending[request_id] = future
        if not w.channel.send((request_id, method, args)):
            self._died(w)
        return await future

    def _got(self, w: _Worker, msg: Any) -> None:
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
                self._spawn_task(_deliver(callback, sdp, tracks))
        elif kind == "stats":
            w.stats = msg[1]
        elif kind == "ready" and w.ready is not None and not w.ready.done():
            w.ready.set_result(None)

    def _closed(self, w: _Worker) -> None:
        if w.ready is not None and not w.ready.done():
            w.ready.set_exception(errors.SfuError(f"SFU worker {w.index} did not start"))
        elif w.alive and not self._stopping:
            self._died(w)

    def _died(self, w: _Worker) -> None:
        """w's process is gone (or its pipe broke) while it should run: restart it."""
        if not w.alive or self._stopping:
            return
        code = w.process.exitcode if w.process is not None else None
        logger.error("SFU worker %d exited (code %s); restarting it", w.index, code)
        self._lost(w)
        self._spawn_task(self._restart(w))

    async def _restart(self, w: _Worker) -> None:
        loop = asyncio.get_running_loop()
        if w.process is not None:  # reap it (and make sure it is gone)
            await loop.run_in_executor(None, w.process.join, STOP_TIMEOUT)
            if w.process.is_alive():
                w.process.kill()
        lived = time.monotonic() - w.started
        w.quick_deaths = w.quick_deaths + 1 if lived < STABLE_AFTER else 0
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAYS[min(w.quick_deaths, len(RESTART_DELAYS) - 1)])
            try:
                await self._spawn(w)
                break
            except Exception as exc:
                logger.error("SFU worker %d did not start again: %s", w.index, type(exc).__name__)
                self._lost(w)
                if w.process is not None and w.process.is_alive():
                    w.process.kill()  # hung while starting: the next try needs its ports
                w.quick_deaths += 1
        if self._stopping:
            return
        reset = [
            (room, participant)
            for room, members in self._members.items()
            if self.placement.worker_for(room) == w.index
            for participant in members
        ]
        for room, participant in reset:
            self._notify(w, "add_participant", room, participant)
            for source, enabled in self._forwarding.get((room, participant), {}).items():
                self._notify(w, "set_forwarding", room, participant, source, enabled)
        logger.warning("SFU worker %d runs again; %d participants offer again", w.index, len(reset))
        if self.on_reset is not None:
            for room, participant in reset:
                try:
                    self.on_reset(room, participant)
                except Exception:
                    logger.exception("telling a participant to offer again failed")

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("SFU pool task failed: %s", type(task.exception()).__name__)

    def _lost(self, w: _Worker) -> None:
        if w.channel is not None:
            w.channel.close()
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
