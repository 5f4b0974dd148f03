"""The leader panel's E2EE and dial-in switches and "make co-leader", in a real browser
against a fresh real server: the number and PIN appear only while dial-in is on, E2EE
disables dial-in, a phone caller is only disconnected after the leader confirms, and a
guest can be made co-leader.

Other participants are protocol clients (`KreisClient`); the phone caller is a client
of kind "gateway", as the SIP gateway would be.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from meeting_pages import open_room, wait_for, wait_state
from playwright.async_api import Page

from app.client import KreisClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

NUMBER = "+49 30 1234567"  # tests/conftest.py: [gateway] numbers
SHOTS = os.environ.get("KREIS_SHOTS")  # a folder: screenshots of the panel for a look


@pytest.fixture
def shared_server(kreis_server: Any) -> Any:
    """Each test here gets its own fresh server (PINs, phones and roles stay apart);
    the `people` fixture opens its pages against it."""
    return kreis_server


@pytest_asyncio.fixture(loop_scope="module")
async def clients() -> AsyncIterator[list[KreisClient]]:
    opened: list[KreisClient] = []
    yield opened
    for client in opened:
        await client.close()


async def browser_leader(page: Page, server: Any, slug: str, lobby: bool = True) -> None:
    await open_room(page, slug, "Leitung", leader=(server.group, server.password))
    await wait_state(page, "room")
    await page.click("#btn-leader")
    await page.locator("#panel-leader").wait_for(timeout=5000)
    if not lobby:
        await page.uncheck("#set-lobby")
        await wait_for(lambda: _unchecked(page, "#set-lobby"), 5, "lobby off")


async def _unchecked(page: Page, selector: str) -> bool:
    return not await page.is_checked(selector)


async def shown_pin(page: Page) -> str:
    if not await page.is_visible("#dial-in-info"):
        return ""
    return (await page.text_content("#dial-in-pin")) or ""


async def until_message(
    client: KreisClient, kind: str, wanted: Any, what: str, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        msg = await client.expect(kind, timeout=left)
        if wanted(msg):
            return msg


def disconnected(gateway: KreisClient) -> bool:
    """The caller was sent away: from the lobby (`lobby_status` ended) or the room."""
    return any(
        (m.get("type") == "lobby_status" and m.get("state") == "ended")
        or m.get("type") == "removed"
        for m in gateway.history
    )


async def _async(value: Any) -> Any:
    return value


async def screenshot(page: Page, name: str, selector: str = "#side") -> None:
    if SHOTS:
        size = page.viewport_size
        await page.set_viewport_size({"width": 1000, "height": 1300})  # the whole panel
        await page.locator(selector).screenshot(path=os.path.join(SHOTS, name))
        if size:
            await page.set_viewport_size(size)


async def test_dial_in_shows_number_and_pin_until_e2ee(
    people: Any, kreis_server: Any, clients: list[KreisClient]
) -> None:
    slug = "schalter-der-leitung"
    leader = await people.page()
    await browser_leader(leader, kreis_server, slug, lobby=False)
    guest = KreisClient(kreis_server.url)
    clients.append(guest)
    await guest.connect()
    await guest.request({"type": "join", "room": slug, "name": "Gast"}, "joined")

    dial_in = leader.locator("#set-dial-in")
    assert await dial_in.get_attribute("role") == "switch"
    assert await leader.get_by_role("switch", name="Phone dial-in").count() == 1
    assert not await leader.is_visible("#dial-in-info")
    # keyboard: focus the switch and press Space
    await dial_in.focus()
    await leader.keyboard.press("Space")
    pin = await wait_for(lambda: shown_pin(leader), 10, "the PIN")
    assert re.fullmatch(r"\d{3} \d{3} \d{3}", pin), pin
    assert await leader.text_content("#dial-in-numbers") == NUMBER
    assert "PIN" in (await leader.text_content("#dial-in-info") or "")
    # the PIN is for leaders: the guest never sees it
    assert all(m.get("dial_in_pin") is None for m in guest.history)
    await screenshot(leader, "panel-dial-in-on.png")

    await leader.get_by_role("switch", name="End-to-end encryption").click()
    await wait_for(dial_in.is_disabled, 10, "dial-in switch disabled")
    assert not await dial_in.is_checked()
    assert await leader.is_checked("#set-e2ee")
    assert not await leader.is_visible("#dial-in-info")
    assert await leader.text_content("#dial-in-pin") == ""
    hint = await leader.text_content("#dial-in-hint") or ""
    assert "off while end-to-end encryption is on" in hint
    # the explanation is the disabled switch's description
    assert await dial_in.get_attribute("aria-describedby") == "dial-in-hint"
    state = await until_message(
        guest, "room_state", lambda m: m["settings"]["e2ee"], "e2ee on for the guest"
    )
    assert state["settings"]["dial_in"] is False
    await screenshot(leader, "panel-e2ee-on.png")

    # in German
    await leader.click("#lang")
    assert "solange Ende-zu-Ende-Verschlüsselung an ist" in (
        await leader.text_content("#dial-in-hint") or ""
    )
    await screenshot(leader, "panel-e2ee-on-de.png")


async def test_e2ee_with_a_phone_caller_asks_first(
    people: Any, kreis_server: Any, clients: list[KreisClient]
) -> None:
    slug = "mit-telefon"
    leader = await people.page("de-DE")
    await browser_leader(leader, kreis_server, slug)
    await leader.click("#set-dial-in")
    pin = (await wait_for(lambda: shown_pin(leader), 10, "the PIN")).replace(" ", "")
    assert re.fullmatch(r"\d{9}", pin)

    gateway = KreisClient(kreis_server.url, kind="gateway")
    clients.append(gateway)
    await gateway.connect()
    await gateway.request(
        {"type": "gateway_auth", "secret": kreis_server.gateway_secret}, "gateway_ok"
    )
    waiting = await gateway.request(
        {"type": "dial_in", "pin": pin, "caller": "…47"}, "lobby_status"
    )
    assert waiting["state"] == "waiting"
    await leader.locator("#lobby-list li.entrant").wait_for(timeout=10000)
    await screenshot(leader, "panel-phone-waiting-de.png")

    e2ee = leader.locator("#set-e2ee")
    dialog = leader.locator("#confirm")
    # first time: the leader changes their mind; nothing happens to the caller
    await e2ee.click()
    await dialog.wait_for(state="visible", timeout=10000)
    question = await leader.text_content("#confirm-text") or ""
    assert "nicht Ende-zu-Ende-verschlüsselt" in question and "getrennt" in question
    assert "Ansage" in question
    await screenshot(leader, "confirm-phones-de.png", "#confirm")
    await leader.click("#confirm-no")
    await dialog.wait_for(state="hidden", timeout=5000)
    assert not await e2ee.is_checked()
    assert await leader.is_visible("#dial-in-info")
    assert not disconnected(gateway)

    # second time: confirmed (by keyboard), the caller is disconnected
    await e2ee.click()
    await dialog.wait_for(state="visible", timeout=10000)
    await leader.focus("#confirm-yes")
    await leader.keyboard.press("Enter")
    await wait_for(lambda: _async(disconnected(gateway)), 10, "the caller disconnected")
    await wait_for(e2ee.is_checked, 10, "E2EE on")
    await wait_for(leader.locator("#set-dial-in").is_disabled, 10, "dial-in disabled")
    assert not await leader.is_visible("#dial-in-info")


async def test_make_co_leader(people: Any, kreis_server: Any, clients: list[KreisClient]) -> None:
    slug = "co-leitung"
    leader = await people.page()
    await browser_leader(leader, kreis_server, slug, lobby=False)
    guest = KreisClient(kreis_server.url)
    clients.append(guest)
    await guest.connect()
    joined = await guest.request({"type": "join", "room": slug, "name": "Gast"}, "joined")
    assert joined["role"] == "guest"
    guest_id = joined["id"]

    await leader.click("#btn-people")
    row = leader.locator(f'#people li[data-participant="{guest_id}"]')
    promote = row.get_by_role("button", name="Make Gast a co-leader")
    await promote.wait_for(timeout=10000)
    await screenshot(leader, "people-actions.png")
    await promote.click()
    assert "co-leader" in (await leader.text_content("#confirm-text") or "")
    await leader.click("#confirm-yes")

    def promoted(msg: dict[str, Any]) -> bool:
        return any(p["id"] == guest_id and p["role"] == "coleader" for p in msg["participants"])

    await until_message(guest, "participants", promoted, "the guest as co-leader")
    await row.locator(".mark.role", has_text="co-leader").wait_for(timeout=10000)
    # a co-leader cannot be promoted again
    assert await row.get_by_role("button", name="Make Gast a co-leader").count() == 0
