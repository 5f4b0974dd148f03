"""A client process of the benchmarks: many light participants, paced, controlled by
the orchestrator over a multiprocessing pipe.

The orchestrator (bench/sfu.py) starts one or two of these so that clients do not
starve the server under test of CPU. Control messages, one tuple each way:

    child  → ("ready", participants)        once every subscriber receives media
    parent → ("mark",)        child → ("marked", sent, 0)          start of the window
    parent → ("stop",)        child → ("stopped", sent)            senders stop
    parent → ("final",)       child → ("final", received, latencies)

A packet belongs to the window when its embedded send time falls between mark and
stop, so packets still queued from before the window are not counted.
    parent → ("close",)       child closes everything and exits
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.measure import Receipts, Stream

log = logging.getLogger(__name__)

PUMP_INTERVAL = 0.005


class Fleet:
    """The streams and receipts of one client process."""

    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.receipts = Receipts()
        self.sent = 0
        self.sending = False
        self.expected_per_packet = 1
        """Subscribers per published packet (room size - 1)."""
        self._pump_task: asyncio.Task[None] | None = None

    def start_sending(self) -> None:
        now = time.monotonic()
        for stream in self.streams:
            stream.start(now)
        self.sending = True
        self._pump_task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        streams = self.streams
        while self.sending:
            now = time.monotonic()
            for stream in streams:
                self.sent += stream.pump(now)
            await asyncio.sleep(PUMP_INTERVAL)

    async def stop_sending(self) -> None:
        self.sending = False
        if self._pump_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task


Setup = Callable[[Fleet, dict[str, Any]], Awaitable[Callable[[], Awaitable[None]]]]
"""Builds the fleet's participants; returns the coroutine function that closes them."""


async def serve_fleet(conn: Connection, setup: Setup, params: dict[str, Any]) -> None:
    """Runs one client process: setup, then answer the orchestrator until close."""
    loop = asyncio.get_running_loop()
    fleet = Fleet()
    close = await setup(fleet, params)
    try:
        conn.send(("ready", len(fleet.streams)))
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            kind = msg[0]
            if kind == "mark":
                fleet.receipts.latencies.clear()
                fleet.receipts.window_packets = 0
                fleet.receipts.window_start = time.monotonic()
                conn.send(("marked", fleet.sent, 0))
            elif kind == "stop":
                # Same instant for the window's end and the senders' stop.
                fleet.receipts.window_end = time.monotonic()
                fleet.sending = False
                await fleet.stop_sending()
                conn.send(("stopped", fleet.sent))
            elif kind == "final":
                r = fleet.receipts
                conn.send(("final", r.window_packets, r.latencies))
            elif kind == "close":
                break
    finally:
        await fleet.stop_sending()
        await close()


def fleet_main(conn: Connection, setup_name: str, params: dict[str, Any]) -> None:
    """Entry point of a client process (multiprocessing, spawn context)."""
    import importlib

    logging.basicConfig(level=logging.WARNING)
    module_name, _, func = setup_name.partition(":")
    setup: Setup = getattr(importlib.import_module(module_name), func)
    try:
        uvloop: Any = None
        if params.get("uvloop"):
            with contextlib.suppress(ImportError):
                import uvloop
        if uvloop is not None:
            uvloop.run(serve_fleet(conn, setup, params))
        else:
            asyncio.run(serve_fleet(conn, setup, params))
    except Exception as exc:
        log.exception("client process failed")
        with contextlib.suppress(Exception):
            conn.send(("error", repr(exc)))


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
