"""The SFU worker pool: rooms placed on worker processes, media forwarded inside them.

Real aiortc clients (tests/sfu/sfu_clients.py) talk to a 2-worker WorkerPool through
the same API they use with a Router; the packets they exchange are forwarded by the
worker process that holds their room.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sfu"))

from sfu_clients import Publisher, Subscriber, ToneTrack, wait_for

from sfu import DownTrackInfo, MediaSettings, UnknownParticipant
from sfu.pool import DictPlacement, WorkerPool, port_slices

POOL_PORTS = (43100, 43299)


@pytest.fixture(params=[False, True], ids=["asyncio", "uvloop"])
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[WorkerPool]:
    """A 2-worker pool; the workers on asyncio's loop, or on uvloop when installed (a
    worker without uvloop falls back to asyncio, so the test holds either way)."""
    settings = MediaSettings(port_min=POOL_PORTS[0], port_max=POOL_PORTS[1])
    p = WorkerPool(settings, 2, use_uvloop=request.param)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def test_port_range_is_cut_into_one_slice_per_worker() -> None:
    slices = port_slices(MediaSettings(port_min=40000, port_max=40999), 3)
    assert [(s.port_min, s.port_max) for s in slices] == [
        (40000, 40332),
        (40333, 40665),
        (40666, 40998),
    ]
    with pytest.raises(ValueError):
        port_slices(MediaSettings(port_min=40000, port_max=40000), 2)


async def test_two_clients_in_one_room_exchange_media(pool: WorkerPool) -> None:
    room = "r-pool"
    router = cast(Any, pool)  # the clients are typed for Router; the pool has its API
    sub = Subscriber(router, room, "sub", capture_raw=True)
    sub.join()
    pub = Publisher(router, room, "pub")
    pool.add_participant(room, "pub", _ignore)
    try:
        await asyncio.wait_for(pub.publish([(ToneTrack(), "mic")]), 15)
        await pub.wait_connected(15)
        await asyncio.wait_for(sub.answered.wait(), 15)
        await wait_for(lambda: len(sub.raw) >= 25, 20)
        stats = await pool.fetch_stats()
        assert stats.forwarded_packets >= 25
        assert stats.participants == 2 and stats.rooms == 1
        # No decoder/encoder in a worker: it runs the Router that tests/sfu proves codec-free.
        assert pool.worker_of(room) in (0, 1)
        pool.set_forwarding(room, "pub", "mic", False)
        pool.request_keyframe(room, "pub")
    finally:
        await asyncio.gather(pub.pc.close(), sub.close(), return_exceptions=True)
    await pool.remove_participant(room, "pub")
    await pool.remove_participant(room, "sub")
    assert pool.worker_of(room) is None


async def test_rooms_spread_over_both_workers(pool: WorkerPool) -> None:
    for i in range(4):
        for j in range(2):
            pool.add_participant(f"room-{i}", f"p{i}-{j}", _ignore)
    placed = [pool.worker_of(f"room-{i}") for i in range(4)]
    assert sorted(placed) == [0, 0, 1, 1]  # type: ignore[type-var]
    stats = await pool.fetch_stats()
    assert stats.rooms == 4 and stats.participants == 8
    # Every participant of a room lives on the room's worker.
    snapshots = [await _worker_stats(pool, k) for k in (0, 1)]
    assert [s["participants"] for s in snapshots] == [4, 4]
    pool.set_forwarding("room-0", "nobody", "mic", False)  # ignored, like Router
    with pytest.raises(UnknownParticipant):
        await pool.got_down_answer("room-0", "nobody", "v=0")
    for i in range(4):
        for j in range(2):
            await pool.remove_participant(f"room-{i}", f"p{i}-{j}")
    assert (await pool.fetch_stats()).participants == 0


async def test_placement_table_is_the_servers() -> None:
    table = DictPlacement()
    table.place("kept", 1)
    p = WorkerPool(MediaSettings(port_min=43300, port_max=43399), 2, table)
    await p.start()
    try:
        p.add_participant("kept", "a", _ignore)
        assert p.worker_of("kept") == 1
        assert (await _worker_stats(p, 1))["participants"] == 1
    finally:
        await p.stop()


async def _worker_stats(pool: WorkerPool, index: int) -> dict[str, int]:
    return dict(await pool._request(pool._workers[index], "stats"))


async def _ignore(sdp: str, tracks: list[DownTrackInfo]) -> None:
    return None
