"""An SFU worker process: one Router on its own event loop (and so its own core),
controlled by the server over a multiprocessing pipe.

The server process (sfu/pool.py, WorkerPool) starts one worker per core and places
whole rooms on them, so every packet of a room is forwarded inside one process and
no media crosses a process boundary; only control messages do. Messages are pickled
tuples (the pipe connects a parent to the child it spawned, nothing else can write
to it; sfu/channel.py carries them without blocking either event loop):

    server → worker   (request_id, method, args)     request_id 0: no reply wanted
    worker → server   ("ready",)                     the Router is running
                      ("reply", request_id, True, result)
                      ("reply", request_id, False, (error class name, message))
                      ("down_offer", room, participant, sdp, [DownTrackInfo])
                      ("stats", {counter: value})    about once a second, and on request

Methods are the Router's public API: add_participant, remove_participant,
got_up_offer, got_down_answer, set_forwarding, set_receive, request_keyframe, stats,
stop.

Once participants have left (and at once when none is left) a worker collects its
reference cycles and gives its heap's free pages back to the system (sfu/memory.py):
otherwise its RSS climbs in steps with churn and never comes down, although nothing
leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from sfu.channel import Channel
from sfu.conn import DownTrackInfo
from sfu.errors import SfuError
from sfu.memory import HeapTrimmer
from sfu.router import Router
from sfu.settings import MediaSettings

logger = logging.getLogger(__name__)

STATS_INTERVAL = 1.0
"""Seconds between the stats a worker pushes to the server."""


class Worker:
    """Serves one Router over one pipe until told to stop (or the pipe closes)."""

    def __init__(self, conn: Connection, settings: MediaSettings) -> None:
        # The server being gone (channel closed) means: close every connection, exit.
        self.channel = Channel(conn, self._got, self._server_gone)
        self.router = Router(settings)
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.trimmer = HeapTrimmer()
        """Gives the heap's free pages back once participants have left (sfu/memory.py)."""

    async def run(self) -> None:
        await self.router.start()
        await self.channel.open()
        self._send(("ready",))
        pusher = asyncio.create_task(self._push_stats())
        try:
            await self._done.wait()
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
            await self.router.stop()
            await self.channel.drain()  # the reply to "stop" goes out before we exit
            await self.channel.stop()

    def _send(self, msg: tuple[Any, ...]) -> None:
        if not self.channel.send(msg):
            self._done.set()

    def _server_gone(self) -> None:
        self._done.set()

    def _got(self, msg: Any) -> None:
        request_id, method, args = msg
        task = asyncio.create_task(self._call(request_id, method, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, request_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            result = await self._dispatch(method, args)
        except SfuError as exc:
            if request_id:
                self._send(("reply", request_id, False, (type(exc).__name__, str(exc))))
            else:
                logger.debug("%s failed: %s", method, type(exc).__name__)
            return
        except Exception as exc:
            logger.exception("worker: %s failed", method)
            if request_id:
                self._send(("reply", request_id, False, ("SfuError", type(exc).__name__)))
            return
        if request_id:
            self._send(("reply", request_id, True, result))

    async def _dispatch(self, method: str, args: tuple[Any, ...]) -> Any:
        r = self.router
        if method == "add_participant":
            room, participant = args
            r.add_participant(room, participant, self._down_offer_sender(room, participant))
            return None
        if method == "remove_participant":
            await r.remove_participant(*args)
            self.trimmer.left()
            return None
        if method == "got_up_offer":
            return await r.got_up_offer(*args)
        if method == "got_down_answer":
            await r.got_down_answer(*args)
            return None
        if method == "set_forwarding":
            r.set_forwarding(*args)
            return None
        if method == "set_receive":
            r.set_receive(*args)
            return None
        if method == "request_keyframe":
            r.request_keyframe(*args)
            return None
        if method == "stats":
            return r.stats.snapshot()
        if method == "stop":
            self._done.set()
            return None
        raise SfuError(f"unknown worker method {method!r}")

    def _down_offer_sender(self, room: str, participant: str) -> Any:
        async def send_down_offer(sdp: str, tracks: list[DownTrackInfo]) -> None:
            self._send(("down_offer", room, participant, sdp, list(tracks)))

        return send_down_offer

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            self._send(("stats", self.router.stats.snapshot()))
            self.trimmer.tick(self.router.stats.participants)


def worker_main(conn: Connection, settings: MediaSettings, use_uvloop: bool = False) -> None:
    """Entry point of a worker process (multiprocessing, spawn start method)."""
    logging.basicConfig(
        level=os.environ.get("KREIS_SFU_WORKER_LOG", "WARNING"),
        format="%(asctime)s sfu-worker[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # Ctrl-C reaches the whole process group: the server decides when workers stop
    # (and a worker whose server is gone sees the pipe close and exits by itself).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        await Worker(conn, settings).run()

    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            use_uvloop = False
    if use_uvloop:
        uvloop.run(main())
    else:
        asyncio.run(main())
