"""A newcomer's walk through the web client, screen by screen, for the accessibility
test (axe-core on every screen) and the screenshots (`python -m tests.screenshots`).

`walk()` drives a leader and a guest in real Chromium against a real server, from the
start page to the goodbye page, and calls `visit(name, page)` at each screen. The
visitor may resize the page and switch its language (`set_lang`); it must leave the
page as it found it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core from npm (tests/package.json; scripts/test installs it)."""
HELP_LINE = "Telefonseelsorge 0800 111 0 111"
"""The `[rooms] help_line` of the walk's server."""
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

Visit = Callable[[str, Page], Awaitable[None]]


async def until(page: Page, expression: str, timeout: float = 20, what: str = "") -> None:
    """Polls a page expression (the CSP forbids wait_for_function's string eval)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await page.evaluate(expression):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out: {what or expression}")


async def state(page: Page, wanted: str) -> None:
    await until(page, f"window.kreis && window.kreis.state === '{wanted}'", 20, wanted)


async def set_lang(page: Page, lang: str) -> None:
    """Switches the page's language the way its button does (also under a modal)."""
    await page.evaluate(f"import('/static/js/i18n.js').then((m) => m.setLang('{lang}'))")


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    found: list[dict[str, Any]] = await page.evaluate(
        """(tags) => axe.run(document, {runOnly: {type: "tag", values: tags}})
          .then((r) => r.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ") + " :: " + n.failureSummary),
          })))""",
        AXE_TAGS,
    )
    return found


async def walk(browser: Browser, server: Any, visit: Visit, slug: str = "dienstag-abend") -> None:
    """Start page, pre-join (guest and leader), waiting for the leader, lobby, the
    leader's lobby, the room (participants, hands, menu, shortcuts, chat, ask to mute,
    remove), and the goodbye pages of guest and leader."""
    contexts = []

    async def new_page(lang: str) -> Page:
        width, height = VIEWPORTS["desktop"]
        context = await browser.new_context(
            locale=lang, viewport={"width": width, "height": height}, base_url=server.url
        )
        await context.grant_permissions(["camera", "microphone"])
        context.set_default_timeout(60000)  # a busy machine; every step is still bounded
        contexts.append(context)
        return await context.new_page()

    try:
        guest, leader = await new_page("en-US"), await new_page("en-US")
        invite = f"/{slug}?k={server.invite(slug)}"

        await guest.goto("/")
        await guest.locator("#room").wait_for()
        await visit("start", guest)

        await guest.goto(invite)
        await guest.locator("#toggle-camera").wait_for()
        await guest.fill("#name", "Mira")
        await visit("prejoin", guest)

        await leader.goto(f"/{slug}#leader")
        await leader.locator("#leader-group").wait_for()
        await leader.fill("#name", "Sabine")
        await leader.check("#rules")
        await leader.fill("#leader-group", server.group)
        await leader.click("#join")
        await leader.locator("#join-error:not(:empty)").wait_for()
        await visit("prejoin-leader-password-missing", leader)

        await guest.check("#rules")
        await guest.click("#join")
        await state(guest, "waiting_leader")
        await visit("waiting-for-leader", guest)

        await leader.fill("#leader-password", server.password)
        await leader.click("#join")
        await state(leader, "room")
        await state(guest, "lobby")
        await visit("lobby", guest)

        await leader.locator('#lobby-list [data-action="admit"]').wait_for(state="attached")
        if await leader.get_attribute("#btn-leader", "aria-expanded") != "true":
            await leader.click("#btn-leader")
        await visit("leader-lobby", leader)

        await leader.locator('#lobby-list [data-action="admit"]').click()
        await state(guest, "room")
        await guest.click("#btn-mic")
        await until(guest, "window.kreis.media.mic", 10, "guest microphone on")
        await guest.click("#btn-hand")
        await visit("room-guest", guest)

        await leader.click("#btn-people")
        await leader.locator("#hands li").wait_for()
        await visit("participants-and-hands", leader)

        await leader.click("#btn-more")
        await leader.locator("#more-menu").wait_for()
        await visit("more-menu", leader)
        await leader.click("#btn-more")

        await leader.locator("#tiles").click()
        await leader.keyboard.press("?")
        await leader.locator("#shortcuts").wait_for()
        await visit("shortcuts", leader)
        await leader.click("#shortcuts-close")

        guest_id = (await guest.evaluate("window.kreis.me"))["id"]
        row = leader.locator(f'#people li[data-participant="{guest_id}"]')
        await row.locator('[data-action="ask-mute"]').click()
        await guest.locator("#mute-ask").wait_for()
        await visit("asked-to-mute", guest)
        await guest.click("#mute-ask-no")

        await row.locator('[data-action="remove"]').click()
        await leader.locator("#confirm").wait_for()
        await visit("remove-confirm", leader)
        await leader.click("#confirm-no")

        await guest.click("#btn-chat")
        await guest.fill("#chat-input", "Hallo zusammen.")
        await guest.press("#chat-input", "Enter")
        await guest.locator("#chat-log li").wait_for()
        await visit("chat", guest)

        await leader.click("#btn-leader")
        await leader.click("#end-room")
        await leader.click("#confirm-yes")
        await state(guest, "ended")
        await state(leader, "ended")
        await visit("ended-guest", guest)
        await visit("ended-leader", leader)
    finally:
        for context in contexts:
            await context.close()
