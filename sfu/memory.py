"""Giving freed heap back to the system after participants leave (glibc's malloc_trim).

What the churn soak (bench/soak.py) measured in an SFU worker: after hundreds of
join/publish/leave sessions, and with the worker idle, the Python objects are the same
in number as after the first round (gc.get_objects(), asyncio tasks), and the bytes
malloc has handed out and not got back (mallinfo2 `uordblks`, about 8 MB) are the same
to the kilobyte. What grows is the free memory glibc keeps inside its heaps: the peer
connections' OpenSSL, libsrtp and buffer allocations are freed, but a few long-lived
chunks above them pin the heap's top, so glibc cannot shrink it and the worker's RSS
climbs in steps of a few MB and never comes down (in one 10-minute soak: 88.5 → 94.5
MB). That is fragmentation, not a leak; `malloc_trim(0)` releases the free pages in
the middle of every heap too (madvise), and the RSS comes back (90 → 80 MB).

So a worker trims its heap once no participant has left for a moment and nobody is
left, and, when the worker never gets empty, at most once every TRIM_INTERVAL after
someone left. A trim takes a few milliseconds on a heap of tens of MB. Where there is
no glibc (musl, macOS) `release_free_heap` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

IDLE_DELAY = 2.0
"""Seconds without a departure, with no participant left, before the heap is trimmed:
the closed connections' last buffers are freed by then."""
TRIM_INTERVAL = 60.0
"""At most one trim per this many seconds while participants come and go."""

_malloc_trim: Any = None
_looked_up = False


def _trim_function() -> Any:
    global _malloc_trim, _looked_up
    if not _looked_up:
        _looked_up = True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            _malloc_trim = getattr(libc, "malloc_trim", None)
        except OSError:
            _malloc_trim = None
        if _malloc_trim is not None:
            _malloc_trim.argtypes = [ctypes.c_size_t]
            _malloc_trim.restype = ctypes.c_int
    return _malloc_trim


def release_free_heap() -> bool:
    """Returns the heap's free pages to the system (glibc `malloc_trim(0)`); False where
    there is no such function."""
    trim = _trim_function()
    if trim is None:
        return False
    trim(0)
    return True


class HeapTrimmer:
    """Decides when a worker trims: `left()` on every departure, `tick()` about once a
    second with the number of participants still there."""

    def __init__(
        self,
        release: Callable[[], bool] = release_free_heap,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._release = release
        self._clock = clock
        self._last_departure: float | None = None
        """When someone last left, if the heap was not trimmed since."""
        self._last_trim = clock()
        self.trims = 0

    def left(self) -> None:
        self._last_departure = self._clock()

    def tick(self, participants: int) -> bool:
        """Trims when it is time; True when it did."""
        if self._last_departure is None:
            return False
        now = self._clock()
        idle = participants == 0 and now - self._last_departure >= IDLE_DELAY
        if not idle and now - self._last_trim < TRIM_INTERVAL:
            return False
        self._last_departure = None
        self._last_trim = now
        started = time.perf_counter()
        if idle:
            # The peer connections' reference cycles (aiortc's transports and their
            # event handlers) wait for a full collection, which an idle process, that
            # allocates nothing, never triggers by itself.
            gc.collect()
        if self._release():
            self.trims += 1
            logger.debug("heap trimmed in %.1f ms", 1000 * (time.perf_counter() - started))
        return True
