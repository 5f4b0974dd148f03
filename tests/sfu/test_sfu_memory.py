"""An SFU worker gives freed heap back (sfu/memory.py): when it trims, and that a trim
really lowers the resident memory of a process whose heap is fragmented.

The churn soak (tests/sfu/test_sfu_soak.py, marker `soak`) checks the whole of it on a
real server; these run in a second.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from sfu import memory
from sfu.memory import IDLE_DELAY, TRIM_INTERVAL, HeapTrimmer, release_free_heap


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_a_trim_gives_a_fragmented_heap_back() -> None:
    # Earlier tests in the same process leave free heap that is still resident: the
    # blocks below would reuse it without growing the process (CI: 24 of 40 MB).
    release_free_heap()
    before = rss_mb()
    # 40 MB of small blocks from malloc; one in 50 stays, so glibc cannot shrink its
    # heap from the top and keeps the freed pages in between.
    blocks = [bytes(2000) for _ in range(20000)]
    kept = blocks[::50]
    full = rss_mb()
    del blocks
    freed = rss_mb()
    assert release_free_heap()
    trimmed = rss_mb()
    print(f"RSS MB: {before:.1f} before, {full:.1f} full, {freed:.1f} freed, {trimmed:.1f} trimmed")
    assert full - before > 30
    assert freed - trimmed > 25, "the trim gave the freed pages back"
    assert len(kept) == 400


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.released: list[float] = []

    def __call__(self) -> float:
        return self.now

    def release(self) -> bool:
        """Stands in for malloc_trim: remembers when it was called."""
        self.released.append(self.now)
        return True


def test_trims_once_everyone_left_and_then_not_again(monkeypatch: pytest.MonkeyPatch) -> None:
    collected: list[float] = []
    clock = Clock()
    monkeypatch.setattr(memory.gc, "collect", lambda: collected.append(clock.now) or 0)
    trimmer = HeapTrimmer(clock.release, clock)
    assert not trimmer.tick(0)  # nobody ever left: nothing to give back
    trimmer.left()
    clock.now += IDLE_DELAY / 2
    assert not trimmer.tick(0)  # the closed connections may still be freeing
    clock.now += IDLE_DELAY
    assert trimmer.tick(0)
    assert clock.released == collected == [clock.now]  # cycles collected, then trimmed
    clock.now += 10 * TRIM_INTERVAL
    assert not trimmer.tick(0)  # idle, and nobody left since
    assert trimmer.trims == 1


def test_a_busy_worker_trims_at_most_once_an_interval() -> None:
    clock = Clock()
    trimmer = HeapTrimmer(clock.release, clock)
    start = clock.now
    for _ in range(int(3 * TRIM_INTERVAL)):  # one departure a second, never empty
        trimmer.left()
        clock.now += 1
        trimmer.tick(12)
    released = clock.released
    assert len(released) == 3
    assert all(b - a >= TRIM_INTERVAL for a, b in zip([start, *released], released, strict=False))


async def test_the_in_process_router_trims_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `[media] workers = 1` (the default) the router runs in the server process,
    which trims the same way once everyone has left."""
    from types import SimpleNamespace
    from typing import Any

    from app import media as app_media
    from app.config import config_from_dict

    monkeypatch.setattr(app_media, "TRIM_TICK", 0.02)
    media = app_media.Media(config_from_dict({}, tmp_path))
    now = [0.0]
    released: list[bool] = []
    media.trimmer = HeapTrimmer(release=lambda: released.append(True) or True, clock=lambda: now[0])
    await media.start()
    try:
        nobody: Any = SimpleNamespace(id="x")
        await media.left(nobody, nobody)  # unknown to the SFU: only the departure counts
        now[0] += IDLE_DELAY + 0.1
        for _ in range(100):
            if released:
                break
            await asyncio.sleep(0.02)
        assert released == [True]
    finally:
        await media.stop()
