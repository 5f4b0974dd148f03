"""Stopping on SIGINT and SIGTERM, for the gateway and its supervisor alike (a module of
its own, so that `sipgw.main` and `sipgw.supervisor` do not import each other), and
stopping a child process (a backend, Kamailio) the same way everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

log = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """`stop` (a new event if None), set on SIGINT or SIGTERM from now on."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on the main thread (a test's loop) or not on this platform: no handler.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def end_process(proc: asyncio.subprocess.Process | None, timeout: float, name: str) -> None:
    """SIGTERM, and SIGKILL if `proc` has not ended within `timeout` seconds."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        log.warning("%s did not stop in time; killing it", name)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
