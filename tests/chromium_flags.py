"""How every browser test starts Debian's Chromium.

Playwright cannot download browsers here, so tests launch /usr/bin/chromium with
fake camera and microphone, no background network requests, and WebRTC allowed on
loopback (the test namespace has nothing else).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


@contextlib.asynccontextmanager
async def launched(args: Sequence[str] = CHROMIUM_ARGS) -> AsyncIterator[Browser]:
    """A Chromium for the time of the `async with`, closed afterwards."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(args))
        try:
            yield browser
        finally:
            await browser.close()
