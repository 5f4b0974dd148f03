"""Real Chromium under the product's headers: TURN relay with Kreis credentials, and the
CSP allowing exactly our own origin (including the same-origin WebSocket)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.config import Config, config_from_dict
from app.security import setup_security
from app.turn import ice_servers

pytestmark = pytest.mark.browser
PAGE_DIR = Path(__file__).resolve().parent / "page"


def _config(turn_url: str = "", secret: str = "") -> Config:
    return config_from_dict(
        {
            "server": {"trusted_proxies": ["127.0.0.1", "::1"]},
            "turn": {"url": turn_url, "secret": secret, "ttl_seconds": 600},
        }
    )


async def _page_server(config: Config) -> TestServer:
    """Serves the test page with the product's security headers, plus an echo /ws."""
    app = web.Application()
    setup_security(app, config)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for _ in sock:
            pass
        return sock

    app.router.add_get("/ws", ws)
    app.router.add_static("/test/", PAGE_DIR)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def _open_page(chromium: Any, server: TestServer) -> tuple[Any, list[str]]:
    page = await chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(str(server.make_url("/test/relay.html")))
    await page.wait_for_function("document.body.dataset.ready === '1'", timeout=10_000)
    return page, errors


async def test_media_through_coturn_with_kreis_credentials(chromium: Any, coturn: Any) -> None:
    config = _config(coturn.url, coturn.secret)
    servers = ice_servers(config)
    assert servers and servers[0]["username"].endswith(":kreis")
    server = await _page_server(config)
    try:
        page, errors = await _open_page(chromium, server)
        result = await page.evaluate("([s]) => window.kreis.relayCall(s, 20)", [servers])
        assert result["connected"], result
        assert result["localType"] == "relay" and result["remoteType"] == "relay", result
        assert result["framesDecoded"] > 10, result
        assert result["audioPackets"] > 0 and result["audioEnergy"] > 0, result
        assert set(result["candidates"]["sender"]) == {"relay"}, result
        assert not errors

        # Control: the same call with a credential coturn did not sign gets nowhere.
        forged = [dict(servers[0], credential="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
        failed = await page.evaluate("([s]) => window.kreis.relayCall(s, 4)", [forged])
        assert not failed["connected"] and failed["framesDecoded"] == 0, failed
    finally:
        await server.close()


async def test_csp_allows_own_websocket_only(chromium: Any) -> None:
    server = await _page_server(_config())
    other = await _page_server(_config())
    try:
        page, errors = await _open_page(chromium, server)
        own = str(server.make_url("/ws")).replace("http://", "ws://")
        foreign = str(other.make_url("/ws")).replace("http://", "ws://")
        assert await page.evaluate("(u) => window.kreis.socketCheck(u)", own) == "open"
        assert await page.evaluate("(u) => window.kreis.socketCheck(u)", foreign) == "csp"
        # An inline script would be refused by script-src 'self'.
        blocked = await page.evaluate(
            """() => new Promise((resolve) => {
                document.addEventListener('securitypolicyviolation',
                  (e) => resolve(e.violatedDirective), {once: true});
                const s = document.createElement('script');
                s.textContent = 'window.inlineRan = true';
                document.body.appendChild(s);
                setTimeout(() => resolve(window.inlineRan ? 'ran' : 'silent'), 1000);
            })"""
        )
        assert blocked.startswith("script-src"), blocked
        assert not errors
    finally:
        await server.close()
        await other.close()
