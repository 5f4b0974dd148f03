"""A page without the room secret: honest about it, and able to get it without the server.

A second leader opens the room without the invite link's fragment (`/<slug>#leader`, as
a bookmark would). The page cannot verify anyone and the others show it as not
verified, and it gets no keys from them. Its person pastes the full invite link (from the
leader page that started the room) into the field the page offers: from then on it is
verified everywhere, decodes the others, and its own invite link carries the secret.
The server never sees the secret: it only travels in fragments and the clipboard.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from chromium_flags import launched
from page_checks import devices_on, media, wait_for
from playwright.async_api import Browser, Page
from test_e2ee_meeting import e2ee, until

from app.client import KreisClient

pytestmark = [
    pytest.mark.e2ee,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="module"),
]


async def opened(chromium: Browser, base: str, path: str, name: str, leader: Any = None) -> Page:
    context = await chromium.new_context(base_url=base, locale="en-US")
    context.set_default_timeout(90_000)  # a busy machine loads and answers slowly
    await context.grant_permissions(["camera", "microphone"])
    page = await context.new_page()
    await page.goto(path)
    await page.fill("#name", name)
    await devices_on(page)  # camera and microphone start off
    await page.check("#rules")
    if leader:
        await page.fill("#leader-group", leader.group)
        await page.fill("#leader-password", leader.password)
    await page.click("#join")
    await until(page, "window.kreis && window.kreis.state === 'room'", 20, f"{name} in the room")
    return page


async def verified(page: Page) -> dict[str, Any]:
    trust = await page.evaluate("window.kreisE2ee.trust")
    return {m["id"]: m["verified"] for m in trust["members"]}


async def my_id(page: Page) -> str:
    return str((await page.evaluate("window.kreis.me"))["id"])


async def test_a_leader_without_the_fragment_pastes_the_link_and_is_verified(
    server_factory: Any,
) -> None:
    server = server_factory("paste")
    slug = "ohne-fragment"
    console = KreisClient(server.url, kind="console")
    await console.connect()
    await console.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )
    async with launched() as chromium:
        # The first leader's page starts the room and makes the secret.
        first = await opened(chromium, server.url, f"/{slug}#leader", "Ahorn", leader=server)
        await until(first, "location.hash.startsWith('#s=')", 10, "the room secret")
        full_link = str(await first.evaluate("location.href"))
        await console.send({"type": "set_e2ee", "room": slug, "on": True})
        await until(first, "window.kreisE2ee.state === 'on'", 20, "E2EE on")

        # The second leader opens the room without the fragment: honest "not verified".
        second = await opened(chromium, server.url, f"/{slug}#leader", "Birke", leader=server)
        a, b = await my_id(first), await my_id(second)
        await until(second, "window.kreisE2ee.state === 'on'", 20, "E2EE on")
        await until(second, "!document.querySelector('.e2ee-paste').hidden", 10, "the paste field")
        assert (await second.evaluate("window.kreisE2ee.trust"))["hasSecret"] is False
        await wait_for(lambda: _is(first, b, False), 10, "b unverified at a")
        text = str(await second.locator("#e2ee-status").text_content())
        assert "the others cannot verify you" in text, text
        await asyncio.sleep(2.0)
        assert (await media(second)).get(a, {}).get("frames", 0) == 0  # no key from a
        assert (await e2ee(second))["perParticipant"].get(a, {}).get("decrypted", 0) == 0

        # A link for another room is refused with a clear sentence; nothing changes.
        await second.fill(".e2ee-paste-link", full_link.replace(f"/{slug}", "/anderer-raum"))
        await second.click(".e2ee-paste-use")
        error = second.locator(".e2ee-paste-error")
        await until(second, "document.querySelector('.e2ee-paste-error').textContent", 5, "error")
        assert "another room" in str(await error.text_content())
        assert (await second.evaluate("window.kreisE2ee.trust"))["hasSecret"] is False

        # The full link: verified everywhere, keys flow, media decodes.
        await second.fill(".e2ee-paste-link", full_link)
        await second.click(".e2ee-paste-use")
        await until(second, "window.kreisE2ee.trust.hasSecret", 10, "the secret taken")
        await wait_for(lambda: _is(first, b, True), 15, "b verified at a")
        await wait_for(lambda: _is(second, a, True), 15, "a verified at b")

        async def decodes() -> bool:
            return (await media(second)).get(a, {}).get("frames", 0) > 0

        await wait_for(decodes, 20, "b decodes a")
        assert await second.locator(".e2ee-paste").is_hidden()
        assert str(await second.evaluate("location.hash")).startswith("#s=")
        invite = str(await second.locator("#invite-url").text_content())
        secret = full_link.split("#s=", 1)[1].split("&")[0]
        assert f"#s={secret}" in invite, invite
        text = str(await second.locator("#e2ee-status").text_content())
        assert "cannot verify you" not in text and "Not verified" not in text, text
    await console.close()


async def _is(page: Page, member: str, value: bool) -> bool:
    return (await verified(page)).get(member) is value
