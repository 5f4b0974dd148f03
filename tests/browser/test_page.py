"""The pages themselves: every control has an accessible name, the pre-join form works
from the keyboard alone, and the landing page turns a pasted link into a room."""

from __future__ import annotations

from typing import Any

import pytest
from meeting_pages import open_room, start_room, wait_for, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

NAMELESS_CONTROLS = """() => {
  const nameless = [];
  for (const node of document.querySelectorAll("button, input, select, a[href], summary")) {
    if (node.closest("[hidden]") || node.type === "hidden") continue;
    const labelled = node.labels && node.labels.length ? node.labels[0].textContent : "";
    const label = node.getAttribute("aria-label") || labelled || node.textContent;
    if (!label || !label.trim()) nameless.push(node.outerHTML.slice(0, 120));
  }
  return nameless;
}"""


async def test_every_control_has_a_name(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    page = await people.page("de-DE")
    await page.goto("/")
    assert await page.evaluate(NAMELESS_CONTROLS) == []
    slug = "alles-beschriftet"
    await open_room(page, slug, "Leitung", leader=(shared_server.group, shared_server.password))
    await wait_state(page, "room")
    for panel in ("#btn-people", "#btn-chat", "#btn-leader"):
        await page.click(panel)
        assert await page.evaluate(NAMELESS_CONTROLS) == [], panel
    guest = await people.page()
    await guest.goto(f"/{slug}")
    assert await guest.evaluate(NAMELESS_CONTROLS) == []


async def test_prejoin_by_keyboard(shared_server: Any, people: Any, leaders: list[Any]) -> None:
    slug = "nur-mit-tastatur"
    leaders.append(await start_room(shared_server, slug))
    page = await people.page()
    await page.goto(f"/{slug}")
    await page.focus("#name")
    await page.keyboard.type("  Tastatur   Mensch  ")
    await page.keyboard.press("Enter")  # rules not accepted yet: the form says so
    assert "accept the rules" in (await page.locator("#join-error").text_content() or "")
    await page.focus("#rules")
    await page.keyboard.press("Space")
    await page.focus("#join")
    await page.keyboard.press("Enter")
    await wait_state(page, "room")
    names = await page.locator(".tile .tile-name").all_text_contents()
    assert "Tastatur Mensch (you)" in names
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement !== document.body")


async def test_landing_page_takes_a_link(shared_server: Any, people: Any) -> None:
    page = await people.page()
    await page.goto("/")
    await page.fill("#room", "nicht gültig!")
    await page.press("#room", "Enter")
    assert "does not look like a room name" in (
        await page.locator("#room-error").text_content() or ""
    )
    await page.fill("#leader-room", "dienstag-abend")
    await page.click("#leader-form button[type=submit]")
    await page.wait_for_url("**/dienstag-abend#leader", timeout=5000)
    assert await page.locator("#leader-login").get_attribute("open") is not None


async def test_camera_off_before_joining(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "ohne-kamera-hinein"
    leaders.append(await start_room(shared_server, slug))
    host, shy = await people.page(), await people.page()
    await open_room(host, slug, "Gastgeberin")
    await wait_state(host, "room")
    await shy.goto(f"/{slug}")
    await shy.locator("#preview-off").wait_for(timeout=5000)  # off until switched on
    await shy.click("#toggle-mic")
    await shy.locator('#toggle-mic[aria-pressed="true"]').wait_for(timeout=10000)
    await shy.fill("#name", "Scheu")
    await shy.check("#rules")
    await shy.click("#join")
    await wait_state(shy, "room")
    chosen = {"mic": True, "camera": False, "screen": False}

    async def devices_as_chosen() -> bool:  # they start once the person is in the room
        return bool(await shy.evaluate("window.kreis.media") == chosen)

    await wait_for(devices_as_chosen, 10, "the chosen microphone on, camera off")
    shy_id = (await shy.evaluate("window.kreis.me"))["id"]

    async def seen_without_camera() -> bool:
        for entry in await host.evaluate("window.kreis.participants"):
            if entry["id"] == shy_id:
                return entry["camera"] is False and entry["mic"] is True
        return False

    await wait_for(seen_without_camera, 10, "the host sees the camera off")
    tile = host.locator(f'.tile[data-participant="{shy_id}"][data-source="camera"]')
    await tile.locator(".avatar").wait_for(timeout=5000)
    assert await tile.locator(".avatar").text_content() == "S"


async def test_leader_hears_about_a_guessable_room_name(shared_server: Any, people: Any) -> None:
    page = await people.page()
    await open_room(page, "test", "Leitung", leader=(shared_server.group, shared_server.password))
    await wait_state(page, "room")
    notice = await page.locator("#notice").text_content() or ""
    assert "easy to guess" in notice
