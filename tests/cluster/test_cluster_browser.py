"""Real Chromium against three nodes: a page that opens the room's URL on a node that
does not own the room ends up in it with media (its signalling relayed by that node,
its media straight to the owner's SFU)."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from chromium_flags import CHROMIUM_ARGS, launched
from cluster_nodes import admit_newest
from kreis_server import GROUP, PASSWORD, KreisServer
from page_checks import devices_on, media, start_room, wait_for
from playwright.async_api import Browser, BrowserContext, Page

from app.client import KreisClient

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched(CHROMIUM_ARGS) as chromium:
        yield chromium


class Pages:
    """One browser context per person; all closed at the end."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    async def open(self, url: str, name: str, leader: bool = False) -> Page:
        context = await self.browser.new_context(
            locale="en-US", viewport={"width": 900, "height": 600}
        )
        await context.grant_permissions(["camera", "microphone"])
        self.contexts.append(context)
        context.set_default_timeout(90_000)  # a busy CI machine: three nodes and Chromiums
        page = await context.new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        await page.goto(url + ("#leader" if leader else ""))
        await page.fill("#name", name)
        await devices_on(page)  # camera and microphone start off
        await page.check("#rules")
        if leader:
            await page.fill("#leader-group", GROUP)
            await page.fill("#leader-password", PASSWORD)
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


async def totals(page: Page) -> tuple[float, float, int]:
    """Frames decoded and audio energy summed over everyone the page receives, and
    how many others it receives."""
    got = await media(page)
    return (
        sum(m["frames"] for m in got.values()),
        sum(m["energy"] for m in got.values()),
        len(got),
    )


class Console:
    """A leader's console over the protocol (what `kreis console` speaks): watches the
    room, admits, and after a dropped connection signs in again and watches the room
    with its resume token, as the console does by itself."""

    def __init__(self, url: str, slug: str) -> None:
        self.url, self.slug = url, slug
        self.client: Any = None
        self.token: str | None = None
        self.back = asyncio.Event()

    async def start(self) -> None:
        self.client = await self._connect()
        await self.client.request({"type": "watch", "room": self.slug}, "room_state")

    async def _connect(self) -> Any:
        client = KreisClient(self.url, kind="console")
        await client.connect()
        await client.request({"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok")
        client.on_message.append(self._seen)
        return client

    def _seen(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "resume_token" and msg.get("room") == self.slug:
            self.token = msg["token"]

    async def come_back(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        await asyncio.wait_for(self.client.closed.wait(), timeout)
        while time.monotonic() < deadline:
            try:
                self.client = await self._connect()
                await self.client.request(
                    {"type": "watch", "room": self.slug, "resume": self.token}, "room_state"
                )
                self.back.set()
                return
            except Exception:
                await asyncio.sleep(0.3)
        raise AssertionError("the console did not get back into its room")

    async def admit_next(self) -> str:
        return await admit_newest(self.client, self.slug, timeout=120)


@pytest.mark.timeout(900)  # four Chromiums and three nodes start slowly on a busy machine
@pytest.mark.wip  # issue 13: 26 s, lobby page lost
async def test_owner_killed_everyone_back_on_another_node_without_knocking(
    nodes: list[KreisServer], pages: Pages
) -> None:
    slug = "ausfall-raum"
    began = time.monotonic()
    before = [rooms_on(n) for n in nodes]
    creator = KreisClient(nodes[0].url, kind="console")
    await creator.connect()
    await creator.request({"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok")
    await creator.request(
        {"type": "create_room", "slug": slug, "lobby": True, "password": None, "dial_in": False},
        "room_created",
    )
    after = [rooms_on(n) for n in nodes]
    owner = next(i for i in range(len(nodes)) if after[i] > before[i])
    entry = nodes[(owner + 1) % len(nodes)]  # everyone comes in through a non-owner
    console = Console(entry.url, slug)
    await console.start()
    await creator.close()
    invite = nodes[owner].invite(slug)
    url = f"{entry.url}/{slug}?k={invite}"
    try:
        people = []
        leader_page = await pages.open(url, "Frau Leiterin", leader=True)
        people.append(leader_page)
        for name in ("Ahorn", "Birke"):
            guest = await pages.open(url, name)
            await console.admit_next()
            people.append(guest)
        for p in people:
            await wait_for(lambda p=p: _in_room(p), 90, "in the room", show=lambda: _states(people))
        for p in people:
            await wait_for(
                lambda p=p: sees_and_hears(p, 2),
                90,
                "video and audio decoded",
                show=lambda: asyncio.gather(*(media(q) for q in people)),
            )
        waiting = await pages.open(url, "Wartend")
        await wait_for(lambda: _state_is(waiting, "lobby"), 60, "in the lobby")
        print(f"set up after {time.monotonic() - began:.0f} s")

        killed = time.monotonic()
        nodes[owner].process.kill()
        console_back = asyncio.create_task(console.come_back())
        await asyncio.sleep(1.0)  # the old streams have stopped: later frames are new
        frozen = [await totals(p) for p in people]
        back_at: list[float] = []
        for p, (frames, energy, _) in zip(people, frozen, strict=True):

            async def flowing(p: Page = p, frames: float = frames, energy: float = energy) -> bool:
                if await state(p) != "room":
                    return False
                now_frames, now_energy, others = await totals(p)
                return others >= 2 and now_frames > frames and now_energy > energy

            await wait_for(flowing, 30, "media again after the owner died")
            back_at.append(time.monotonic() - killed)
        await console_back
        worst = max(back_at)
        print(f"FAILOVER: back with video and audio {worst:.1f} s after kill -9 "
              f"(per page: {', '.join(f'{t:.1f}' for t in back_at)})")  # fmt: skip
        for p in people:
            await wait_for(lambda p=p: sees_and_hears(p, 2), 20, "both others seen and heard")
        # nobody knocked: every returning page went straight in; the leader still leads
        assert (await leader_page.evaluate("window.kreis.me"))["role"] == "leader"
        # the fourth page knocks again and waits in the lobby of the room's new home
        await asyncio.sleep(2)
        assert await state(waiting) in ("lobby", "waiting_leader"), await state(waiting)
        assert worst < 10, back_at
    finally:
        if console.client is not None:
            await console.client.send({"type": "end_room", "room": slug})
            await console.client.close()


async def _state_is(page: Page, wanted: str) -> bool:
    return await state(page) == wanted


async def _states(people: list[Page]) -> list[str]:
    return [
        await p.evaluate(
            "[window.kreis && window.kreis.state, document.body.innerText.slice(0, 300)]"
        )
        for p in people
    ]
