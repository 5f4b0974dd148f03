"""Fixtures for the browser tests: Debian's Chromium through Playwright's async API.

One browser per test module (starting Chromium is the slow part), a fresh context per
participant (its own cookies, storage and fake devices). Pages talk only to the real
`kreis serve` from the harness on 127.0.0.1. Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from chromium_flags import CHROMIUM_ARGS as BASE_ARGS
from chromium_flags import launched
from playwright.async_api import Browser, BrowserContext, Page

from app.client import KreisClient

# Screen sharing in tests: Chromium picks the whole (fake) screen by itself.
CHROMIUM_ARGS = [*BASE_ARGS, "--auto-select-desktop-capture-source=Entire screen"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launched(CHROMIUM_ARGS) as chromium:
        yield chromium


class People:
    """Opens one browser context per participant and closes them all at the end."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    async def page(self, lang: str = "en-US") -> Page:
        context = await self.browser.new_context(
            locale=lang, viewport={"width": 1000, "height": 700}, base_url=self.base_url
        )
        await context.grant_permissions(["camera", "microphone"])
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        # the strict CSP must never have to refuse anything the client does
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(message.text)

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def people(browser: Browser, shared_server: Any) -> AsyncIterator[People]:
    crowd = People(browser, shared_server.url)
    try:
        yield crowd
    finally:
        await crowd.close()
    assert not crowd.errors, crowd.errors


@pytest.fixture
def leaders() -> list[KreisClient]:
    return []


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _close_leaders(leaders: list[KreisClient]) -> AsyncIterator[None]:
    yield
    for client in leaders:
        await client.close()
