"""Polling and media checks shared by every browser test (Chromium and Firefox).

`wait_for` polls a coroutine until it returns something truthy. `media` reads the
web client's own stats hook (`window.kreis.stats()`) of a page: a Playwright page or
a Firefox tab driven over WebDriver BiDi, anything with an async `evaluate`.
`start_room` is the leader every browser test needs: a protocol client, like the
console, that logs in and starts a room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from app.client import KreisClient


class Evaluating(Protocol):
    """A Playwright page or a Firefox tab: both evaluate an expression, promises awaited."""

    async def evaluate(self, expression: str) -> Any: ...


async def wait_for(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 20,
    what: str = "condition",
    show: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.25)
    shown = f"; {await show()!r}" if show else ""
    raise AssertionError(f"timed out waiting for {what} (last: {last!r}{shown})")


async def media(page: Evaluating) -> dict[str, dict[str, float]]:
    """Per publisher: frames decoded (camera) and audio energy (mic)."""
    snap = await page.evaluate("window.kreis.stats()")
    out: dict[str, dict[str, float]] = {}
    for s in snap["inbound"]:
        entry = out.setdefault(s["participant"], {"frames": 0, "energy": 0.0})
        if s["kind"] == "video" and s["source"] == "camera":
            entry["frames"] = s["framesDecoded"]
        if s["kind"] == "audio" and s["source"] == "mic":
            entry["energy"] = s["totalAudioEnergy"]
    return out


async def start_room(server: Any, slug: str, lobby: bool = False) -> KreisClient:
    """A leader over the protocol (like the console) that starts a room."""
    leader = KreisClient(server.url, kind="console")
    await leader.connect()
    await leader.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )
    await leader.request(
        {"type": "create_room", "slug": slug, "lobby": lobby, "password": None, "dial_in": False},
        "room_created",
    )
    return leader
