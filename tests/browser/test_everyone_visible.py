"""Everyone who can hear is seen, and every name stays text, in real Chromium against
the real server (ARCHITECTURE.md, "Trust boundaries").

- A console member (a leader's `kreis console` in the room: it hears everything) is
  listed and has an audio-only tile on every page, labelled "Leader (console)" /
  "Leitung (Konsole)"; when E2EE goes on it is taken out (its audio cannot be
  encrypted) and every page shows it gone.
- Guests with hostile names (tests/hostile_names.py) are admitted and chat; every page
  shows the literal characters, builds no element from them and opens no dialog.
- The leader's lobby shows how each entrant comes: phone or browser.
- Someone whose connection dropped stays listed, marked "getrennt", until the leader
  removes them.
- A stranger is told calmly that a room is not open (`room_closed`) and may try again
  with a password; a name kept for the leader is refused with its own sentence.

Other members are protocol clients (`KreisClient`), as the console and the SIP gateway
are; the pages are Chromium with fake devices.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hostile_names import HTML, MARKUP
from meeting_pages import open_room, state_of, wait_state
from page_checks import wait_for
from playwright.async_api import Page

from app.client import KreisClient

pytestmark = [
    pytest.mark.browser,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
]

# The only elements the list, the tiles, the chat and the lobby are built from: a name
# or chat line that became markup would add another (img, b, script, svg, a, …).
BUILT_FROM = {
    "li", "div", "span", "button", "figure", "figcaption", "video", "time", "ol", "form",
    "input",
}  # fmt: skip
ALL_PARTS = "#people *, #tiles *, #chat-log *, #lobby-list *, #notice *"

SHOTS = os.environ.get("KREIS_SHOTS")  # a folder: screenshots of the pages for a look

HOSTILE = [
    "<img src=x onerror=alert(1)>",  # the one that joins in a browser
    "<b>Max</b>",
    "<script>alert('Nina')</script>",
    '"><svg onload=alert(1)>',
    "&lt;Otto&gt;",
    "[@click=screen.admit]Anna Schmidt[/]",
    "[@click=app.quit]Dora[/]",
]
assert all(name in HTML + MARKUP for name in HOSTILE)


async def screenshot(page: Page, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=os.path.join(SHOTS, name))


async def console_joins(server: Any, slug: str) -> tuple[KreisClient, str]:
    """A leader's console in the room, as `kreis console` joins: log in, join, no name."""
    console = KreisClient(server.url, kind="console")
    await console.connect()
    await console.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )
    joined = await console.request({"type": "join", "room": slug, "name": ""}, "joined")
    return console, str(joined["id"])


async def guest_knocks(server: Any, slug: str, name: str) -> KreisClient:
    """A guest with the room's invitation knocks (a protocol client, like a browser)."""
    guest = KreisClient(server.url)
    await guest.connect()
    join = {"type": "join", "room": slug, "name": name, "invite": server.invite(slug)}
    reply = await guest.request(join, "lobby_status", "joined")
    assert reply.get("state", "joined") in ("waiting", "joined"), reply
    return guest


async def browser_leader(page: Page, server: Any, slug: str) -> None:
    await open_room(page, slug, "Anna", leader=(server.group, server.password))
    await wait_state(page, "room")


async def admit_in_panel(leader: Page, entrants: int) -> None:
    """Waits for `entrants` people in the leader's lobby and lets them all in."""
    await wait_for(lambda: _count(leader, "#lobby-list li.entrant", entrants), 15, "knocks")
    if entrants == 1:
        await leader.locator('#lobby-list button[data-action="admit"]').click()
    else:
        await leader.click("#admit-all")
    await wait_for(lambda: _count(leader, "#lobby-list li.entrant", 0), 10, "lobby empty")


async def _count(page: Page, selector: str, n: int) -> bool:
    return await page.locator(selector).count() == n


async def texts(page: Page, selector: str) -> list[str]:
    return await page.locator(selector).all_text_contents()


async def foreign_elements(page: Page) -> list[str]:
    names: list[str] = await page.evaluate(
        f"[...document.querySelectorAll({ALL_PARTS!r})].map((e) => e.localName)"
    )
    return sorted(set(names) - BUILT_FROM)


async def test_a_console_member_is_seen_on_every_page(
    shared_server: Any, people: Any, leaders: list[KreisClient]
) -> None:
    slug = "die-konsole-hoert-mit"
    leader, guest = await people.page(), await people.page("de-DE")
    await browser_leader(leader, shared_server, slug)

    # the leader sees the invite link (with the room secret in its fragment), and the
    # address bar holds its path and query
    await leader.click("#btn-leader")
    invite = await leader.text_content("#invite-url") or ""
    assert await leader.is_visible("#invite-url") and invite.startswith("http"), invite
    link = await leader.evaluate("location.pathname + location.search")
    assert invite.split("#")[0].endswith(link), (invite, link)
    assert link == f"/{slug}?k={shared_server.invite(slug)}", link

    # the guest comes by the whole invite link and is let in
    await guest.goto(invite)
    await guest.fill("#name", "Berta")
    await guest.check("#rules")
    await guest.click("#join")
    await wait_state(guest, "lobby")
    await admit_in_panel(leader, 1)
    await wait_state(guest, "room")

    console, console_id = await console_joins(shared_server, slug)
    leaders.append(console)

    for page, label, title in (
        (leader, "Leader (console)", "Participants (3)"),
        (guest, "Leitung (Konsole)", "Teilnehmende (3)"),
    ):
        await page.click("#btn-people")
        row = page.locator(f'#people li[data-participant="{console_id}"]')
        await row.wait_for(state="visible", timeout=10000)
        assert await row.locator(".person-name").text_content() == "Leitung"
        assert await row.locator(".mark.kind.console").text_content() == label
        assert await page.text_content("#people-title") == title
        assert await page.locator("#people li.person").count() == 3

        tile = page.locator(f'#tiles .tile[data-participant="{console_id}"]')
        await tile.wait_for(state="visible", timeout=10000)
        assert "audio-only" in (await tile.get_attribute("class") or "")
        assert await tile.locator(".tile-name").text_content() == "Leitung"
        assert await tile.locator(".mark.kind.console").text_content() == label
        assert label in (await tile.get_attribute("aria-label") or "")
        assert await page.locator('#tiles .tile[data-source="camera"]').count() == 3
        await screenshot(page, f"console-seen-{label[:6].lower()}.png")

    # the console's audio cannot be end-to-end encrypted: when E2EE goes on it is taken
    # out of the room, is told why, and every page shows that it is gone
    await leader.click("#btn-leader")
    await leader.get_by_role("switch", name="End-to-end encryption").click()
    assert (await console.expect("error"))["code"] == "e2ee_console_audio"
    for page, title in ((leader, "Participants (2)"), (guest, "Teilnehmende (2)")):
        row = page.locator(f'#people li[data-participant="{console_id}"]')
        await row.wait_for(state="detached", timeout=15000)
        people_title = page.locator("#people-title")
        await wait_for(lambda t=people_title, s=title: _text_is(t, s), 10, title)
        assert await page.locator(f'#tiles .tile[data-participant="{console_id}"]').count() == 0


async def _text_is(locator: Any, wanted: str) -> bool:
    return bool(await locator.count() == 1 and await locator.text_content() == wanted)


async def test_hostile_names_and_chat_stay_text(
    shared_server: Any, people: Any, leaders: list[KreisClient]
) -> None:
    slug = "namen-bleiben-text"
    leader, guest = await people.page(), await people.page()
    dialogs: list[str] = []

    async def refuse(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    for page in (leader, guest):
        page.on("dialog", refuse)
    await browser_leader(leader, shared_server, slug)

    browser_name, *others = HOSTILE
    await open_room(guest, slug, browser_name)
    await wait_state(guest, "lobby")
    for name in others:
        leaders.append(await guest_knocks(shared_server, slug, name))
    await wait_for(lambda: _count(leader, "#lobby-list li.entrant", len(HOSTILE)), 15, "knocks")
    assert await foreign_elements(leader) == []
    assert sorted(await texts(leader, "#lobby-list .person-name")) == sorted(HOSTILE)
    await admit_in_panel(leader, len(HOSTILE))
    await wait_state(guest, "room")

    await guest.click("#btn-chat")
    await guest.fill("#chat-input", browser_name)
    await guest.press("#chat-input", "Enter")
    for client, name in zip(leaders, others, strict=True):
        await client.expect("joined")
        await client.send({"type": "chat", "text": name, "to": None})

    for page, me in ((leader, "Anna"), (guest, browser_name)):
        if page is leader:
            await page.click("#btn-chat")
        chat = page.locator("#chat-log .chat-item")
        await wait_for(lambda p=page: _count(p, "#chat-log .chat-item", len(HOSTILE)), 15, "chat")
        assert sorted(await texts(page, "#chat-log .chat-text")) == sorted(HOSTILE)
        assert sorted(await texts(page, "#chat-log .chat-name")) == sorted(HOSTILE)
        assert await chat.count() == len(HOSTILE)
        listed = await texts(page, "#people .person-name")
        shown = await texts(page, "#tiles .tile-name")
        for name in HOSTILE:
            mine = name == me
            assert (f"{name} (you)" if mine else name) in listed, (name, listed)
            assert (f"{name} (you)" if mine else name) in shown, (name, shown)
        assert await foreign_elements(page) == []
        await screenshot(page, f"hostile-{me[:4].strip('<')}.png")
        # nothing anywhere on the page was made from a name (the control bar's own
        # icons are `<svg class="icon">` in room.html; any other svg came from outside)
        made = "img, main b, main script, svg:not(.icon), [onerror], [onload]"
        assert await page.locator(made).count() == 0
    assert dialogs == []


async def test_the_lobby_says_how_each_entrant_comes(
    shared_server: Any, people: Any, leaders: list[KreisClient]
) -> None:
    slug = "wer-klopft-wie-an"
    leader = await people.page()
    await browser_leader(leader, shared_server, slug)
    await leader.click("#btn-leader")
    await leader.click("#set-dial-in")
    pin_text = await wait_for(lambda: _pin(leader), 10, "the PIN")
    pin = pin_text.replace(" ", "")

    gateway = KreisClient(shared_server.url, kind="gateway")
    leaders.append(gateway)
    await gateway.connect()
    await gateway.request(
        {"type": "gateway_auth", "secret": shared_server.gateway_secret}, "gateway_ok"
    )
    waiting = await gateway.request(
        {"type": "dial_in", "pin": pin, "caller": "…47"}, "lobby_status"
    )
    assert waiting["state"] == "waiting"
    leaders.append(await guest_knocks(shared_server, slug, "Clara"))

    await wait_for(lambda: _count(leader, "#lobby-list li.entrant", 2), 15, "two knocks")
    phone = leader.locator('#lobby-list li.entrant[data-kind="phone"]')
    browser = leader.locator('#lobby-list li.entrant[data-kind="browser"]')
    assert await phone.locator(".mark.kind").text_content() == "Phone"
    assert await browser.locator(".mark.kind").text_content() == "Browser"
    assert await browser.locator(".person-name").text_content() == "Clara"

    await screenshot(leader, "lobby-kinds.png")
    await leader.click("#lang")
    assert await phone.locator(".mark.kind").text_content() == "Telefon"

    # let the caller in: the phone has an audio-only tile that says so
    await phone.locator('button[data-action="admit"]').click()
    tile = leader.locator('#tiles .tile[data-kind="phone"]')
    await tile.wait_for(state="visible", timeout=10000)
    assert "audio-only" in (await tile.get_attribute("class") or "")
    assert await tile.locator(".mark.kind.phone").text_content() == "Telefon"
    await screenshot(leader, "phone-tile.png")
    assert "Kamera aus" not in (await tile.text_content() or "")


async def _pin(page: Page) -> str:
    if not await page.is_visible("#dial-in-info"):
        return ""
    return (await page.text_content("#dial-in-pin")) or ""


async def test_someone_who_dropped_stays_seen_until_removed(
    shared_server: Any, people: Any, leaders: list[KreisClient]
) -> None:
    slug = "wer-weg-ist-bleibt-da"
    leader = await people.page("de-DE")
    await browser_leader(leader, shared_server, slug)
    guest = await guest_knocks(shared_server, slug, "Dora")
    await admit_in_panel(leader, 1)
    dora = str((await guest.expect("joined"))["id"])
    await guest.close()  # gone without `leave`: listed as away while she may come back

    await leader.click("#btn-people")
    row = leader.locator(f'#people li[data-participant="{dora}"]')
    await row.locator(".mark.away").wait_for(timeout=10000)
    assert await row.locator(".mark.away").text_content() == "getrennt"
    tile = leader.locator(f'#tiles .tile[data-participant="{dora}"]')
    assert "away" in (await tile.get_attribute("class") or "")
    assert await tile.locator(".mark.away").text_content() == "getrennt"
    await screenshot(leader, "away.png")

    # the leader lets her go for good: list and tile follow the server
    await row.get_by_role("button", name="Dora entfernen").click()
    await leader.click("#confirm-yes")
    await row.wait_for(state="detached", timeout=10000)
    await tile.wait_for(state="detached", timeout=10000)


ROOM_CLOSED = (
    "This room is not open to you right now. It may not have started yet, it may be "
    "locked, or it may need a password. Check your link and the password, or try again "
    "later."
)


async def test_a_closed_room_and_a_reserved_name_are_explained(people: Any) -> None:
    page = await people.page()
    # a stranger's name may not pass as the leader's console
    await open_room(page, "noch-nicht-offen", "Leitung (Konsole)")
    error = page.locator("#join-error")
    reserved = "This name is kept for the group's leader. Please choose another name."
    await wait_for(lambda: _text_is(error, reserved), 10, "reserved_name")
    assert await page.get_attribute("#name", "aria-invalid") == "true"

    # no invitation and no room yet: one calm answer, the password field, "Try again"
    await page.fill("#name", "Gast")
    await page.click("#join")
    await wait_for(lambda: _text_is(error, ROOM_CLOSED), 10, "room_closed")
    assert await page.is_visible("#room-password")
    assert await page.text_content("#join") == "Try again"
    assert await state_of(page) == "prejoin"
    await screenshot(page, "room-closed.png")
    await page.click("#lang")
    assert await page.text_content("#join") == "Noch einmal versuchen"
