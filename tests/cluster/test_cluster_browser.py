"""Real Chromium against three nodes: a page that opens the room's URL on a node that
does not own the room ends up in it with media (its signalling relayed by that node,
its media straight to the owner's SFU)."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from chromium_flags import CHROMIUM, CHROMIUM_ARGS
from kreis_server import KreisServer
from page_checks import media, start_room, wait_for
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Pages:
    """One browser context per person; all closed at the end."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    async def open(self, url: str, name: str) -> Page:
        context = await self.browser.new_context(
            locale="en-US", viewport={"width": 900, "height": 600}
        )
        await context.grant_permissions(["camera", "microphone"])
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        await page.goto(url)
        await page.fill("#name", name)
        await page.check("#rules")
        await page.click("#join")
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def pages(browser: Browser) -> AsyncIterator[Pages]:
    opened = Pages(browser)
    try:
        yield opened
    finally:
        await opened.close()
    assert not opened.errors, opened.errors


def rooms_on(node: KreisServer) -> int:
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as answer:
        match = re.search(r"^kreis_rooms (\S+)$", answer.read().decode(), re.M)
    assert match
    return int(float(match.group(1)))


async def state(page: Page) -> str:
    return str(await page.evaluate("window.kreis && window.kreis.state"))


async def sees_and_hears(page: Page, others: int) -> bool:
    got = await media(page)
    return sum(1 for m in got.values() if m["frames"] > 0 and m["energy"] > 0) >= others


async def owner_of_new_room(nodes: list[KreisServer], slug: str) -> tuple[Any, int]:
    """Starts `slug` through node 0 (a protocol leader, like the console); returns the
    leader and the index of the node the room was placed on."""
    before = [rooms_on(n) for n in nodes]
    leader = await start_room(nodes[0], slug, lobby=False)
    after = [rooms_on(n) for n in nodes]
    placed = [i for i in range(len(nodes)) if after[i] > before[i]]
    assert len(placed) == 1, (before, after)
    return leader, placed[0]


async def test_page_on_a_node_that_does_not_own_the_room_gets_in_with_media(
    nodes: list[KreisServer], pages: Pages
) -> None:
    slug = "fremder-knoten-raum"
    leader, owner = await owner_of_new_room(nodes, slug)
    entry = nodes[(owner + 1) % len(nodes)]
    try:
        invite = nodes[owner].invite(slug)
        people = [
            await pages.open(f"{entry.url}/{slug}?k={invite}", name) for name in ("Ahorn", "Birke")
        ]
        for page in people:
            await wait_for(lambda p=page: _in_room(p), 30, "in the room")
        for page in people:
            await wait_for(lambda p=page: sees_and_hears(p, 1), 40, "video and audio decoded")
        # the pages really talk to the entry node: their origin is the entry
        assert all(p.url.startswith(entry.url) for p in people)
    finally:
        await leader.send({"type": "end_room", "room": slug})
        await leader.close()


async def _in_room(page: Page) -> bool:
    return await state(page) == "room"
