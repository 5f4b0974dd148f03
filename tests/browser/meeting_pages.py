"""Helpers for the browser tests: drive the pre-join form, read the client's debugging
hook (window.kreis) and start rooms as a protocol leader. Every wait is bounded.
"""

from __future__ import annotations

import time
from typing import Any

from page_checks import devices_on, wait_for
from page_checks import start_room as start_room  # re-exported for the browser tests
from playwright.async_api import Page

from app.client import KreisClient


async def open_room(
    page: Page,
    slug: str,
    name: str,
    *,
    leader: tuple[str, str] | None = None,
    invite: str | None = None,
    devices: bool = True,
) -> None:
    """Opens /<slug> (with `?k=<invite>`, the room's invitation link, when given), fills
    the pre-join form and presses Join. `devices`: switch camera and microphone on first
    (they are off until the person does)."""
    query = f"?k={invite}" if invite else ""
    await page.goto(f"/{slug}{query}" + ("#leader" if leader else ""))
    if devices:
        await devices_on(page)
    await page.fill("#name", name)
    await page.check("#rules")
    if leader:
        await page.fill("#leader-group", leader[0])
        await page.fill("#leader-password", leader[1])
    await page.click("#join")


async def alice_and_bob(
    server: Any, people: Any, leaders: list[Any], slug: str
) -> tuple[Page, Page]:
    """A room started by a protocol leader (kept in `leaders`), Alice and Bob in it with
    camera and microphone on."""
    leaders.append(await start_room(server, slug))
    alice, bob = await people.page(), await people.page()
    await open_room(alice, slug, "Alice")
    await open_room(bob, slug, "Bob")
    await wait_state(alice, "room")
    await wait_state(bob, "room")
    return alice, bob


async def state_of(page: Page) -> str:
    return str(await page.evaluate("window.kreis.state"))


async def wait_state(page: Page, state: str, timeout: float = 15) -> None:
    """Waits for window.kreis.state (polled with evaluate: the page's CSP forbids the
    string eval that page.wait_for_function would need)."""

    async def reached() -> bool:
        return bool(await page.evaluate("s => window.kreis && window.kreis.state === s", state))

    await wait_for(reached, timeout, f"state {state}")


async def stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.kreis.stats()")
    return result


def inbound(
    snapshot: dict[str, Any], kind: str | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    return [
        s
        for s in snapshot["inbound"]
        if (kind is None or s["kind"] == kind) and (source is None or s["source"] == source)
    ]


async def next_entrant(leader: KreisClient, timeout: float = 15) -> dict[str, Any]:
    """The first entrant of the next non-empty `lobby_queue` the leader receives."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("nobody knocked")
        queue = await leader.expect("lobby_queue", timeout=left)
        if queue["entrants"]:
            entrant: dict[str, Any] = queue["entrants"][0]
            return entrant


async def publishing(page: Page, packets: int = 20) -> bool:
    """True once every one of the page's outgoing tracks has sent `packets` packets."""
    out = (await stats(page))["outbound"]
    return bool(out) and all(o["packetsSent"] > packets for o in out)


async def wait_publishing(page: Page, what: str, timeout: float = 20) -> None:
    await wait_for(lambda: publishing(page), timeout, what, show=lambda: stats(page))
