"""An SFU worker killed with SIGKILL under a room of two Chromium participants: the
server starts it again, tells both pages `media_restart`, they offer again, and video
and audio are decoded again within 10 s of the kill; /healthz says `media: false` in
between and `true` after.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kreis_server import KreisServer, free_port, start_server, worker_pids, write_config
from meeting_pages import inbound, open_room, start_room, stats, wait_for, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

BACK_WITHIN = 10.0


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KreisServer]:
    """This module's server runs its SFU in two worker processes."""
    tmp = tmp_path_factory.mktemp("sfu-restart")
    config = tmp / "kreis.toml"
    write_config(config, free_port())
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[media]\n", "[media]\nworkers = 2\n", 1), encoding="utf-8")
    server = start_server(tmp, health_timeout=120)  # two worker processes to spawn
    try:
        yield server
    finally:
        server.stop()


def _open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
        body: dict[str, Any] = json.load(reply)
        return body


async def _video_and_audio(page: Any) -> tuple[int, float]:
    snap = await stats(page)
    video = [s["framesDecoded"] for s in inbound(snap, "video", "camera")]
    audio = [s["totalAudioEnergy"] for s in inbound(snap, "audio", "mic")]
    return (max(video) if video else 0, max(audio) if audio else 0.0)


async def test_a_killed_sfu_worker_brings_media_back_within_10_s(
    shared_server: KreisServer, people: Any, leaders: list[Any]
) -> None:
    slug = "arbeiter-neustart"
    leaders.append(await start_room(shared_server, slug))
    pages = [await people.page() for _ in range(2)]
    for page in pages:
        page.set_default_timeout(90_000)  # two Chromium pages on a busy machine load slowly
    for page, name in zip(pages, ["Esche", "Linde"], strict=True):
        await open_room(page, slug, name)
    for page in pages:
        await wait_state(page, "room", 60)

    async def flowing(page: Any) -> bool:
        frames, energy = await _video_and_audio(page)
        return frames > 10 and energy > 0

    for page in pages:
        await wait_for(lambda p=page: flowing(p), 60, "video and audio before the kill")
    assert _health(shared_server.url) == {"status": "ok", "media": True}

    # The worker that holds the room is the one with the peer connections' sockets.
    workers = worker_pids(shared_server.process.pid)
    assert len(workers) == 2, workers
    victim = max(workers, key=_open_files)
    before = [await _video_and_audio(page) for page in pages]
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)

    health_seen: list[dict[str, Any]] = []

    async def watch_health() -> None:
        while True:
            health_seen.append(await asyncio.to_thread(_health, shared_server.url))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_health())
    back: list[float] = []
    try:
        for page, (frames_then, _) in zip(pages, before, strict=True):
            reset = False

            async def again(page: Any = page, frames_then: int = frames_then) -> bool:
                nonlocal reset
                frames, energy = await _video_and_audio(page)
                # a new down connection counts from zero: the old one is gone
                reset = reset or frames < frames_then
                return reset and frames > 0 and energy > 0

            await wait_for(again, 30, "video and audio after the kill")
            back.append(time.monotonic() - killed)
        await wait_for(
            lambda: asyncio.to_thread(lambda: _health(shared_server.url)["media"]), 10, "health"
        )
    finally:
        watcher.cancel()
    print(f"media decoded again {max(back):.1f} s after SIGKILL of the SFU worker")
    assert {"status": "degraded", "media": False} in health_seen, health_seen[:5]
    assert _health(shared_server.url) == {"status": "ok", "media": True}
    assert max(back) < BACK_WITHIN, back
    assert victim not in worker_pids(shared_server.process.pid)
    for page in pages:
        assert await page.evaluate("window.kreis.state") == "room"  # no rejoin, no knock
