"""A dead SFU worker is started again, its participants are told to offer again and get
media back; a clean stop logs no error; the server's loop never blocks on a worker's
pipe. Real worker processes, real aiortc clients on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sfu_clients import Publisher, Subscriber, ToneTrack, wait_for

from sfu import MediaSettings
from sfu.pool import WorkerPool

POOL_PORTS = (43300, 43499)


@pytest.fixture
async def pool() -> AsyncIterator[tuple[WorkerPool, list[tuple[str, str]]]]:
    resets: list[tuple[str, str]] = []
    settings = MediaSettings(port_min=POOL_PORTS[0], port_max=POOL_PORTS[1])
    p = WorkerPool(settings, 2, on_reset=lambda room, who: resets.append((room, who)))
    await p.start()
    try:
        yield p, resets
    finally:
        await p.stop()


async def _ignore(sdp: str, tracks: object) -> None:
    pass


async def _media(pool: WorkerPool, room: str, tag: str) -> tuple[Publisher, Subscriber]:
    router = cast(Any, pool)  # the clients are typed for Router; the pool has its API
    sub = Subscriber(router, room, "sub", capture_raw=True)
    sub.join()
    pub = Publisher(router, room, "pub")
    pool.add_participant(room, "pub", _ignore)
    await asyncio.wait_for(pub.publish([(ToneTrack(), "mic")]), 20)
    await wait_for(lambda: len(sub.raw) > 20, 20)
    return pub, sub


async def test_a_killed_worker_comes_back_and_its_participants_offer_again(
    pool: tuple[WorkerPool, list[tuple[str, str]]], caplog: pytest.LogCaptureFixture
) -> None:
    p, resets = pool
    room = "r-restart"
    pub, sub = await _media(p, room, "before")
    index = p.worker_of(room)
    assert index is not None and p.healthy
    pid = p.worker_pids()[index]
    try:
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: not p.healthy, 5)
        assert p.worker_health()[1 - index]  # the other worker is untouched
        await wait_for(lambda: p.healthy, 60)
        assert p.worker_pids()[index] != pid
        assert sorted(resets) == [(room, "pub"), (room, "sub")]
    finally:
        await sub.close()
        await pub.pc.close()

    # What app/ does on media_restart: fresh connections, the same seat in the room.
    pub, sub = await _media(p, room, "after")
    print(f"media back {time.monotonic() - killed:.1f} s after the kill")
    await sub.close()
    await pub.pc.close()
    assert any("exited" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)

    caplog.clear()
    await p.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_stuck_worker_does_not_block_the_servers_loop(
    pool: tuple[WorkerPool, list[tuple[str, str]]],
) -> None:
    """A worker that reads nothing (stopped): megabytes of control messages are queued
    at once instead of blocking the event loop on a full pipe."""
    p, _ = pool
    room = "r-stuck"
    p.add_participant(room, "x", _ignore)
    index = p.worker_of(room)
    assert index is not None
    pid = p.worker_pids()[index]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        for n in range(20_000):
            p.set_forwarding(room, "x", "mic" if n % 2 else "camera", bool(n % 3))
        assert time.monotonic() - started < 5
        assert p.healthy
    finally:
        os.kill(pid, signal.SIGCONT)
    stats = await asyncio.wait_for(p.fetch_stats(), 30)  # the worker catches up
    assert stats.participants == 1
