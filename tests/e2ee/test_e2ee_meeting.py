"""E2EE through the real server and SFU: three Chromium participants in one room.

The leader (over the protocol, like the console) switches E2EE on; every browser
follows, and each receives the other two's video and audio, decrypted. Then E2EE goes
off and on again live, and media keeps flowing. Media is read from getStats() through
the client's debugging hook (window.kreis), the engine's counters from window.kreisE2ee.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from chromium_flags import CHROMIUM, CHROMIUM_ARGS
from page_checks import keeps_flowing, media, wait_for
from playwright.async_api import Page, async_playwright

from app.client import KreisClient

pytestmark = [pytest.mark.e2ee, pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def until(page: Page, expression: str, timeout: float, what: str) -> None:
    async def check() -> bool:
        return bool(await page.evaluate(expression))

    await wait_for(check, timeout, what)


async def open_room(page: Page, slug: str, name: str) -> None:
    await page.goto(f"/{slug}")
    await page.click("#toggle-camera")  # camera and microphone start off
    await page.click("#toggle-mic")
    await page.fill("#name", name)
    await page.check("#rules")
    await page.click("#join")


async def e2ee(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.kreisE2ee.stats()")
    return result


async def same_sas(pages: list[Page], timeout: float = 20) -> dict[str, Any]:
    """Waits until every page shows one safety number; returns it."""

    async def check() -> dict[str, Any] | None:
        sas = [await p.evaluate("window.kreisE2ee.sas") for p in pages]
        if sas[0] is not None and all(s == sas[0] for s in sas):
            return dict(sas[0])
        return None

    found: dict[str, Any] = dict(await wait_for(check, timeout, "one safety number on every page"))
    return found


async def confirm_clear(pages: list[Page]) -> None:
    """After a switch-off: the banner is on every page; each person confirms."""
    for page in pages:
        await page.locator("#e2ee-banner").wait_for(state="visible", timeout=10_000)
        await page.click("#e2ee-banner .e2ee-confirm-clear")
        await page.locator("#e2ee-banner").wait_for(state="hidden", timeout=10_000)


async def flowing(page: Page, others: set[str], seconds: float = 2.0) -> dict[str, Any]:
    """Asserts video frames and audio energy rise from every other participant."""
    return await keeps_flowing(page, others, seconds)


async def test_three_browsers_with_e2ee_see_and_hear_each_other_and_switch_live(
    kreis_server: Any,
) -> None:
    slug = "verschluesselt-im-kreis"
    leader = KreisClient(kreis_server.url, kind="console")
    await leader.connect()
    await leader.send(
        {"type": "login", "group": kreis_server.group, "password": kreis_server.password}
    )
    await leader.expect("login_ok")
    await leader.send(
        {"type": "create_room", "slug": slug, "lobby": False, "password": None, "dial_in": False}
    )
    await leader.expect("room_created")
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        errors: list[str] = []
        pages: list[Page] = []
        try:
            for locale in ("en-US", "en-US", "de-DE"):
                context = await chromium.new_context(base_url=kreis_server.url, locale=locale)
                await context.grant_permissions(["camera", "microphone"])
                page = await context.new_page()
                page.on("pageerror", lambda err: errors.append(str(err)))
                pages.append(page)
            for page, name in zip(pages, ["Ahorn", "Birke", "Ceder"], strict=True):
                await open_room(page, slug, name)
            for page in pages:
                await until(page, "window.kreis && window.kreis.state === 'room'", 20, "joined")
            assert await pages[0].evaluate("typeof window.kreisE2ee === 'object'")
            ids = [(await p.evaluate("window.kreis.me"))["id"] for p in pages]

            async def all_decoding(page: Page, others: set[str]) -> bool:
                m = await media(page)
                s = await e2ee(page)
                return (
                    s["state"] == "on"
                    and all(m.get(o, {}).get("frames", 0) > 0 for o in others)
                    and all(m.get(o, {}).get("energy", 0) > 0 for o in others)
                )

            others = [set(ids) - {ids[i]} for i in range(3)]
            for i, page in enumerate(pages):
                await wait_for(functools.partial(all_decoding, page, others[i]), 40, "e2ee media")
            for i, page in enumerate(pages):
                await flowing(page, others[i])
                s = await e2ee(page)
                assert s["passedClear"] == 0, s  # nothing arrived in clear through the SFU
                assert s["encrypted"] > 0 and s["decrypted"] > 0, s
                for pid in others[i]:
                    assert s["perParticipant"][pid]["decrypted"] > 0, (pid, s)
                    assert s["perParticipant"][pid]["lastFrame"] == "encrypted", (pid, s)
            sas = await same_sas(pages)
            status = await pages[0].locator("#e2ee-status").text_content()
            assert status and sas["digits"] in status, status
            assert "Chat and names are not end-to-end encrypted" in status, status
            status_de = await pages[2].locator("#e2ee-status").text_content()
            assert status_de and "verschlüsselt" in status_de, status_de
            assert sas["digits"] in status_de and "Sicherheitsnummer" in status_de, status_de

            # Live off: every page holds (banner) until its person confirms; then clear.
            await leader.send({"type": "set_e2ee", "room": slug, "on": False})
            await confirm_clear(pages)
            for page in pages:
                await until(page, "window.kreisE2ee.state === 'off'", 10, "off")
            await asyncio.sleep(1.5)
            clear_before = [(await e2ee(p))["passedClear"] for p in pages]
            for i, page in enumerate(pages):
                await flowing(page, others[i])
                assert (await e2ee(page))["passedClear"] > clear_before[i]

            # And on again, without rejoining.
            await leader.send({"type": "set_e2ee", "room": slug, "on": True})
            for page in pages:
                await until(page, "window.kreisE2ee.state === 'on'", 10, "on")
            await asyncio.sleep(1.5)
            dec_before = [(await e2ee(p))["decrypted"] for p in pages]
            clear_before = [(await e2ee(p))["passedClear"] for p in pages]
            for i, page in enumerate(pages):
                await flowing(page, others[i])
                s = await e2ee(page)
                assert s["decrypted"] > dec_before[i], s
                assert s["passedClear"] == clear_before[i], s

            # Someone leaves: everyone else switches to a fresh key, media keeps flowing.
            key_before = (await e2ee(pages[0]))["keyIds"]["self"]
            await pages[2].context.close()

            async def new_key() -> bool:
                return bool((await e2ee(pages[0]))["keyIds"]["self"] != key_before)

            await wait_for(new_key, 10, "a new key after the leave")
            await asyncio.sleep(1.0)
            await flowing(pages[1], {ids[0]})
            s = await e2ee(pages[1])
            assert s["keyIds"][ids[0]] == (await e2ee(pages[0]))["keyIds"]["self"], s
            assert not errors, errors
        finally:
            await chromium.close()
            await leader.close()
