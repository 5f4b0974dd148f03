"""Staying in the meeting in real Chromium: a network cut, a restart of `kreis serve`,
and a leader who closes the tab.

The cut is made by the kernel, not by the page: Alice reaches the server through a
plain TCP relay on its own port (so that her signalling can be told apart from
everyone else's on loopback), and iptables in the test's network namespace drops
everything on that port and on her media ports (read from her peer connections'
stats) for 20 s and for 90 s. Bob and the leader keep their network.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kreis_server import KreisServer, free_port, start_server
from meeting_pages import inbound, next_entrant, open_room, start_room, stats, wait_for, wait_state
from page_checks import TRACK_PEER_CONNECTIONS
from playwright.async_api import Browser, Page

from app.client import KreisClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

SLOW = 45
"""Seconds for steps that are not what a test measures (a loaded CI machine)."""

LOCAL_MEDIA_PORTS = """async () => {
  const ports = new Set();
  for (const pc of window.__kreisTestPcs) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "local-candidate" && s.port) ports.add(s.port);
    });
  }
  return [...ports];
}"""


@pytest.fixture(scope="module")
def long_grace_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KreisServer]:
    """The default grace of 2 minutes (the harness shortens it for other tests)."""
    server = start_server(
        tmp_path_factory.mktemp("resilience"), rooms={"resume_grace_seconds": 120}
    )
    try:
        yield server
    finally:
        server.stop()


class Pages:
    """A browser context per person, pointed at the given base URL; closed at the end."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    async def page(self, base_url: str, lang: str = "en-US") -> Page:
        context = await self.browser.new_context(
            locale=lang, viewport={"width": 1000, "height": 700}, base_url=base_url
        )
        await context.grant_permissions(["camera", "microphone"])
        context.set_default_navigation_timeout(60_000)  # a loaded CI machine
        context.set_default_timeout(60_000)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        return page

    async def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def pages(browser: Browser) -> AsyncIterator[Pages]:
    crowd = Pages(browser)
    try:
        yield crowd
    finally:
        await crowd.close()
    assert not crowd.errors, crowd.errors


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[list[KreisClient]]:
    opened: list[KreisClient] = []
    yield opened
    for client in opened:
        await client.close()


class Relay:
    """A TCP relay on its own loopback port in front of the server: one person's way in."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()


def iptables(action: str, rules: list[list[str]]) -> None:
    for rule in rules:
        subprocess.run(["iptables", action, "INPUT", *rule, "-j", "DROP"], check=True, timeout=10)


def cut_rules(tcp_port: int, udp_ports: list[int]) -> list[list[str]]:
    rules = [["-p", "tcp", "--dport", str(tcp_port)], ["-p", "tcp", "--sport", str(tcp_port)]]
    for port in udp_ports:
        rules += [["-p", "udp", "--dport", str(port)], ["-p", "udp", "--sport", str(port)]]
    return rules


async def frames_from(page: Page, participant: str) -> int:
    snap = await stats(page)
    return sum(
        s["framesDecoded"]
        for s in inbound(snap, "video", "camera")
        if s["participant"] == participant
    )


async def frames_rising(page: Page, participant: str, what: str, timeout: float = SLOW) -> None:
    first = await wait_for(lambda: frames_from(page, participant), timeout, what)

    async def more() -> bool:
        return await frames_from(page, participant) > first

    await wait_for(more, 20, what + " (rising)", show=lambda: stats(page))


async def me(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate("window.kreis.me")
    return found


async def reconnecting_shown(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "document.body.dataset.connection === 'reconnecting'"
            " && !document.getElementById('notice').hidden"
        )
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("cut_seconds", [20, 90])
async def test_a_network_cut_comes_back_without_a_knock(
    long_grace_server: KreisServer,
    pages: Pages,
    clients: list[KreisClient],
    cut_seconds: int,
) -> None:
    server = long_grace_server
    slug = f"netz-weg-{cut_seconds}"
    leader = await start_room(server, slug, lobby=True)
    clients.append(leader)
    relay = Relay(server.port)
    await relay.start()
    alice = await pages.page(relay.url)
    await alice.add_init_script(TRACK_PEER_CONNECTIONS)
    bob = await pages.page(server.url)
    for page, name in ((alice, "Alice"), (bob, "Bob")):
        await open_room(page, slug, name)
        entrant = await next_entrant(leader, SLOW)
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await wait_state(page, "room", SLOW)
    alice_id, bob_id = (await me(alice))["id"], (await me(bob))["id"]
    await frames_rising(alice, bob_id, "Alice sees Bob")
    await frames_rising(bob, alice_id, "Bob sees Alice")
    udp_ports = await alice.evaluate(LOCAL_MEDIA_PORTS)
    assert udp_ports, "Alice's media ports"

    rules = cut_rules(relay.port, udp_ports)
    seen_before = len(leader.history)
    iptables("-I", rules)
    cut_at = time.monotonic()
    try:
        await wait_for(lambda: reconnecting_shown(alice), 10, "Alice's page says reconnecting")
        shown_after = time.monotonic() - cut_at
        print(f"\n'reconnecting' shown {shown_after:.1f} s after the cut")
        assert shown_after < 3.0, shown_after
        await asyncio.sleep(cut_seconds - (time.monotonic() - cut_at))
        # Still saying what is going on at the end of the cut.
        assert await reconnecting_shown(alice)
    finally:
        iptables("-D", rules)
    back_at = time.monotonic()
    await wait_state(alice, "room", SLOW)
    assert (await me(alice))["id"] == alice_id  # the same participant, not a newcomer
    await frames_rising(alice, bob_id, "Alice sees Bob after the cut")
    await frames_rising(bob, alice_id, "Bob sees Alice after the cut")
    print(f"media both ways again {time.monotonic() - back_at:.1f} s after the network returned")
    knocks = [
        m for m in leader.history[seen_before:] if m.get("type") == "lobby_queue" and m.get("knock")
    ]
    assert knocks == [], "coming back must not knock at the lobby"
    assert not await reconnecting_shown(alice)
    await relay.stop()


@pytest.mark.timeout(450)
async def test_a_restart_of_kreis_serve_brings_everyone_back(tmp_path: Path, pages: Pages) -> None:
    home = tmp_path / "neustart"
    server = start_server(home)
    try:
        slug = "neustart-im-treffen"
        leader = await pages.page(server.url)
        await open_room(leader, slug, "Leitung", leader=(server.group, server.password))
        await wait_state(leader, "room", SLOW)
        guests = [await pages.page(server.url) for _ in range(2)]
        for guest, name in zip(guests, ("Anna", "Bert"), strict=True):
            await open_room(guest, slug, name)
            await wait_state(guest, "lobby", SLOW)
        await leader.locator("#lobby-list li.entrant").nth(1).wait_for(timeout=SLOW * 1000)
        await leader.click("#admit-all")
        everyone = [leader, *guests]
        for page in guests:
            await wait_state(page, "room", SLOW)
        ids = [(await me(page))["id"] for page in everyone]
        for page, other in ((leader, ids[1]), (guests[0], ids[0]), (guests[1], ids[0])):
            await frames_rising(page, other, "media before the restart")

        server.stop()
        server = start_server(home)  # returns once /healthz answers: it is listening
        listening = time.monotonic()
        for page in everyone:
            await wait_state(page, "room", SLOW)

        async def all_decoding() -> bool:
            for page, mine in zip(everyone, ids, strict=True):
                for other in ids:
                    if other != mine and await frames_from(page, other) <= 0:
                        return False
            return True

        await wait_for(all_decoding, 10, "everyone decodes everyone after the restart")
        took = time.monotonic() - listening
        print(f"\nall three back in the room with video decoded {took:.1f} s after listening")
        assert took < 10, took
        assert [(await me(page))["id"] for page in everyone] == ids
        assert (await me(leader))["role"] == "leader"
        roles = {p["id"]: p["role"] for p in await guests[0].evaluate("window.kreis.participants")}
        assert roles[ids[0]] == "leader"
    finally:
        server.stop()


async def notice_text(page: Page) -> str:
    shown = await page.evaluate(
        "(() => { const n = document.getElementById('notice');"
        " return n && !n.hidden ? n.textContent : ''; })()"
    )
    return str(shown)


@pytest.mark.timeout(450)
async def test_the_leader_closes_the_tab(
    long_grace_server: KreisServer, pages: Pages, clients: list[KreisClient]
) -> None:
    server = long_grace_server
    slug = "leitung-geht"
    leader = await pages.page(server.url)
    await open_room(leader, slug, "Leitung", leader=(server.group, server.password))
    await wait_state(leader, "room", SLOW)
    # A second leader at the console admits and promotes, then stops watching: from
    # then on the leader's page is the room's only leader.
    console = await start_room(server, "nebenraum")
    clients.append(console)
    await console.request({"type": "watch", "room": slug}, "room_state")
    anna, bert = await pages.page(server.url), await pages.page(server.url, "de-DE")
    for guest, name in ((anna, "Anna"), (bert, "Bert")):
        await open_room(guest, slug, name)
        entrant = await next_entrant(console, SLOW)
        await console.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await wait_state(guest, "room", SLOW)
    anna_id = (await me(anna))["id"]
    await console.send({"type": "promote", "room": slug, "id": anna_id})
    await console.send({"type": "unwatch", "room": slug})

    async def anna_is(role: str) -> bool:
        people = await bert.evaluate("window.kreis.participants")
        return any(p["id"] == anna_id and p["role"] == role for p in people)

    await wait_for(lambda: anna_is("coleader"), SLOW, "Anna is co-leader")
    await leader.close()  # the tab is closed, no "leave" sent
    await wait_for(lambda: anna_is("leader"), 20, "Anna leads the room now")
    told = await wait_for(lambda: notice_text(bert), 10, "Bert is told")
    assert "Anna leitet den Raum jetzt" in told, told
    assert "You lead the room now" in await wait_for(lambda: notice_text(anna), 10, "Anna")

    # Anna leaves as well: nobody leads the room, and a latecomer is told so.
    await anna.close()
    await wait_for(
        lambda: _has(notice_text(bert), "Bis eine Leitung zurück ist"),
        20,
        "Bert is told nobody leads",
    )
    late = await pages.page(server.url)
    await open_room(late, slug, "Spaet")
    await wait_state(late, "lobby", SLOW)
    text = await late.locator("#wait-text").text_content() or ""
    assert "No leader is in the room right now" in text, text


async def _has(text: Any, part: str) -> bool:
    return part in await text
