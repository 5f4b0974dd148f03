"""TURN end to end: the Kreis server hands out credentials for its coturn in `hello`,
and two Chromium participants on the real web client, allowed to use nothing but
relay candidates, see and hear each other through coturn and the SFU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from page_checks import wait_for

from app.client import KreisClient

pytestmark = pytest.mark.browser
FORCE_RELAY = Path(__file__).resolve().parent / "page" / "force-relay.js"
SLUG = "zz-relay-probe-4k"


async def _join(chromium: Any, url: str, name: str) -> tuple[Any, Any]:
    context = await chromium.new_context(base_url=url)
    await context.grant_permissions(["camera", "microphone"])
    await context.add_init_script(path=str(FORCE_RELAY))
    page = await context.new_page()
    await page.goto(f"/{SLUG}")
    await page.click("#toggle-camera")  # camera and microphone start off
    await page.click("#toggle-mic")
    await page.fill("#name", name)
    await page.check("#rules")
    await page.click("#join")
    return context, page


async def _receiving(page: Any) -> Any:
    snap = await page.evaluate("window.kreis.stats()")
    video = [s for s in snap["inbound"] if s["kind"] == "video" and s["framesDecoded"] > 10]
    audio = [s for s in snap["inbound"] if s["kind"] == "audio" and s["totalAudioEnergy"] > 0]
    return snap if video and audio else None


async def test_media_relayed_through_coturn_via_kreis(
    chromium: Any, coturn: Any, harness: Any, tmp_path: Path
) -> None:
    turn = f'\n[turn]\nurl = "{coturn.url}"\nsecret = "{coturn.secret}"\nttl_seconds = 600\n'
    server = harness.start_server(tmp_path / "server", extra_config=turn)
    leader = KreisClient(server.url, kind="console")
    contexts: list[Any] = []
    try:
        hello = await leader.connect()
        [ice] = hello["ice_servers"]
        assert ice["urls"] == [coturn.url] and ice["username"].endswith(":kreis")
        await leader.request(
            {"type": "login", "group": server.group, "password": server.password}, "login_ok"
        )
        await leader.request({"type": "create_room", "slug": SLUG, "lobby": False}, "room_created")

        pages = []
        for name in ("Relais-Ahorn", "Relais-Birke"):
            context, page = await _join(chromium, server.url, name)
            contexts.append(context)
            pages.append(page)
        for page in pages:
            await wait_for(
                lambda p=page: p.evaluate("window.kreis && window.kreis.state === 'room'"),
                20,
                "the room",
            )
        for page in pages:
            try:
                await wait_for(lambda p=page: _receiving(p), 40, "video and audio through TURN")
            except AssertionError:
                debug = await page.evaluate("window.__kreisPairs()")
                snap = await page.evaluate("window.kreis.stats()")
                raise AssertionError(f"no media: {debug} {snap}") from None
            pairs = await page.evaluate("window.__kreisPairs()")
            connected = [p for p in pairs if p["state"] == "connected"]
            assert len(connected) == 2, pairs  # up and down
            for pair in connected:
                assert pair["local"] == "relay", pairs
                assert pair["iceServers"][0]["username"].endswith(":kreis"), pairs
    finally:
        for context in contexts:
            await context.close()
        await leader.close()
        server.stop()
