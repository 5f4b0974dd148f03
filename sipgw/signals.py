"""Stopping on SIGINT and SIGTERM, for the gateway and its supervisor alike (a module of
its own, so that `sipgw.main` and `sipgw.supervisor` do not import each other)."""

from __future__ import annotations

import asyncio
import contextlib
import signal


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """`stop` (a new event if None), set on SIGINT or SIGTERM from now on."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on the main thread (a test's loop) or not on this platform: no handler.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    return stop
