"""Security headers, the client address behind proxies, `/metrics` access and content,
and TURN credentials, on small in-process apps (the full-server versions are in
test_privacy_server.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.config import Config, config_from_dict
from app.metrics import render_metrics, setup_metrics
from app.security import CONTENT_SECURITY_POLICY, client_address, setup_security
from app.turn import ice_servers

SNAPSHOT: dict[str, Any] = {
    "rooms": 1,
    "participants": {"browser": 2, "phone": 1, "console": 0, "zz-spurlos": 5},
    "mic_on": 2,
    "camera_on": 1,
    "screen_on": 0,
    "lobby_waiting": 1,
    "forwarded_packets": 1234,
    "forwarded_bytes": 567890,
}


def _config(**server: Any) -> Config:
    """A real, validated Config: a renamed field fails here instead of being skipped."""
    tls = (
        {"tls_cert": server["tls_cert"], "tls_key": server["tls_cert"]}
        if server.get("tls_cert")
        else {}
    )
    return config_from_dict(
        {
            "server": {
                **tls,
                "behind_proxy": server.get("behind_proxy", False),
                "trusted_proxies": server.get("trusted_proxies", []),
            },
            "metrics": {
                "token": server.get("token", ""),
                "loopback_only": server.get("loopback_only", True),
            },
        }
    )


def _app(config: Config, static_dir: Path) -> web.Application:
    app = web.Application()
    setup_security(app, config)
    setup_metrics(app, config, lambda: SNAPSHOT)

    async def index(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>Kreis</p>", content_type="text/html")

    async def addr(request: web.Request) -> web.Response:
        return web.json_response({"addr": client_address(request, config)})

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.close()
        return sock

    app.router.add_get("/", index)
    app.router.add_get("/addr", addr)
    app.router.add_get("/ws", ws)
    app.router.add_static("/static/", static_dir)
    app.router.add_get("/{slug}", index)
    return app


def _assert_headers(headers: Any, html: bool = False, tls: bool = False) -> None:
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "camera=(self)" in headers["Permissions-Policy"]
    assert "geolocation=()" in headers["Permissions-Policy"]
    assert ("Strict-Transport-Security" in headers) is tls
    assert "Server" not in headers or "aiohttp" not in headers["Server"].lower()
    if html:
        assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("tls", [False, True])
async def test_headers_on_every_response(tmp_path: Path, tls: bool) -> None:
    (tmp_path / "app.js").write_text("console.log(1)")
    config = _config(tls_cert="/etc/kreis/cert.pem" if tls else "")
    async with TestClient(TestServer(_app(config, tmp_path), host="127.0.0.1")) as client:
        for path, status, html in [
            ("/", 200, True),
            ("/zz-spurlos-7q3x", 200, True),
            ("/static/app.js", 200, False),
            ("/static/missing.js", 404, False),
            ("/a/b/c", 404, False),
            ("/metrics", 200, False),
        ]:
            resp = await client.get(path)
            assert resp.status == status, path
            _assert_headers(resp.headers, html=html, tls=tls)
        sock = await client.ws_connect("/ws")
        _assert_headers(sock._response.headers, tls=tls)
        await sock.close()


def _request(peer: str, xff: str | None = None) -> web.BaseRequest:
    from aiohttp.test_utils import make_mocked_request

    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (peer, 4444) if name == "peername" else default

        def is_closing(self) -> bool:
            return False

    headers = {"X-Forwarded-For": xff} if xff else {}
    return make_mocked_request("GET", "/", headers=headers, transport=Transport())


def test_client_address_trusts_only_configured_proxies() -> None:
    plain = _config()
    assert client_address(_request("198.51.100.4", "203.0.113.77"), plain) == "198.51.100.4"
    proxied = _config(behind_proxy=True, trusted_proxies=["10.0.0.0/8", "::1"])
    assert client_address(_request("10.1.1.1", "203.0.113.77"), proxied) == "203.0.113.77"
    assert client_address(_request("::1", "203.0.113.77"), proxied) == "203.0.113.77"
    # A client-forged left-most hop does not win over the hop the proxy saw.
    forged = "127.0.0.1, 203.0.113.77, 10.2.2.2"
    assert client_address(_request("10.1.1.1", forged), proxied) == "203.0.113.77"
    # Not from a proxy: the header is ignored, whatever it says.
    assert client_address(_request("198.51.100.4", "127.0.0.1"), proxied) == "198.51.100.4"
    assert client_address(_request("::ffff:10.1.1.1", "2001:db8::9"), proxied) == "2001:db8::9"
    assert client_address(_request("10.1.1.1", "garbage"), proxied) == "10.1.1.1"
    loop_default = _config(behind_proxy=True)
    assert client_address(_request("127.0.0.1", "203.0.113.77"), loop_default) == "203.0.113.77"


STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
_OTHER_ORIGIN = re.compile(r"""["'(=]\s*(?:https?:|wss?:)?//[\w.-]+\.[a-z]{2,}|["']stuns?:""", re.I)


def test_pages_load_nothing_from_third_parties() -> None:
    """docs/privacy.md: no fonts, CDNs, analytics or public STUN servers. The CSP allows
    our own origin only, and no page, style or script names another origin."""
    for directive in CONTENT_SECURITY_POLICY.split("; "):
        _, *sources = directive.split()
        assert set(sources) <= {"'self'", "'none'", "data:", "blob:"}, directive
    files = [p for p in STATIC.rglob("*") if p.suffix in (".html", ".css", ".js", ".mjs")]
    assert len(files) > 5
    found = [
        f"{path.relative_to(STATIC)}: {match.group(0)}"
        for path in files
        for match in _OTHER_ORIGIN.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_metrics_render_aggregates_only() -> None:
    text = render_metrics(lambda: SNAPSHOT).decode()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["kreis_rooms"] == 1
    assert values['kreis_participants{kind="browser"}'] == 2
    assert values['kreis_participants{kind="phone"}'] == 1
    assert values['kreis_participants{kind="console"}'] == 0
    assert values["kreis_mic_on"] == 2 and values["kreis_camera_on"] == 1
    assert values["kreis_screen_shares"] == 0 and values["kreis_lobby_waiting"] == 1
    assert values["kreis_forwarded_packets_total"] == 1234
    assert values["kreis_forwarded_bytes_total"] == 567890
    assert "zz-spurlos" not in text and "process_" not in text and "python_" not in text
    assert render_metrics(lambda: {}).decode().count("kreis_rooms 0.0") == 1


async def test_metrics_fail_visibly_when_the_snapshot_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken snapshot is 503 and a log line, never `kreis_rooms 0` (which would
    tell monitoring the server is idle when nobody knows)."""

    def broken() -> dict[str, Any]:
        raise RuntimeError("hub gone")

    app = web.Application()
    setup_metrics(app, _config(), broken)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answer = await client.get("/metrics")
        assert answer.status == 503
        assert "kreis_rooms" not in await answer.text()
    assert "metrics snapshot failed" in caplog.text


async def test_metrics_token_and_loopback(tmp_path: Path) -> None:
    config = _config(token="s3cret-token", loopback_only=True, trusted_proxies=["127.0.0.1"])
    async with TestClient(TestServer(_app(config, tmp_path), host="127.0.0.1")) as client:
        assert (await client.get("/metrics")).status == 401
        bad = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert bad.status == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status == 200 and "kreis_rooms 1.0" in await ok.text()
        assert ok.headers["Content-Type"].startswith("text/plain")
        # Through a trusted proxy from elsewhere: not loopback any more.
        proxied = await client.get(
            "/metrics",
            headers={"Authorization": "Bearer s3cret-token", "X-Forwarded-For": "203.0.113.77"},
        )
        assert proxied.status == 403

    open_config = _config(token="t0k", loopback_only=False)
    async with TestClient(TestServer(_app(open_config, tmp_path), host="127.0.0.1")) as client:
        resp = await client.get("/metrics", headers={"Authorization": "Bearer t0k"})
        assert resp.status == 200


def test_ice_servers_coturn_rest_scheme() -> None:
    assert ice_servers(_config(), 1000) == []
    turn = {"url": "turn:turn.example.org:3478", "secret": "geheim", "ttl_seconds": 60}
    config = config_from_dict({"turn": turn})
    [server] = ice_servers(config, 1_700_000_000)
    assert server["urls"] == ["turn:turn.example.org:3478"]
    assert server["username"] == "1700000060:kreis"
    expected = hmac.new(b"geheim", b"1700000060:kreis", hashlib.sha1).digest()
    assert base64.b64decode(server["credential"]) == expected
    # Several URLs in one string, separated by commas (config.example.toml says so).
    both = config_from_dict({"turn": {**turn, "url": "turn:a:3478?transport=udp,turns:a:5349"}})
    assert ice_servers(both, 0)[0]["urls"] == ["turn:a:3478?transport=udp", "turns:a:5349"]


async def test_memory_hook_is_added_by_the_harness_only() -> None:
    """The product's app has no `/_test` route; the harness's hooks search memory."""
    from server_hooks import add_test_hooks

    from app.config import Config
    from app.server import create_app

    assert not [r for r in create_app(Config()).router.routes() if "_test" in str(r.resource)]
    app = web.Application()
    add_test_hooks(app)
    # The server runs in this process, so the strings are built at run time and only
    # their base64 form is kept here: no constant or local names them in full.
    app["kept"] = {"holder": "".join(["Zwetschgen", "baum-Quux", " im Raum"])}
    parts = [["Zwetschgen", "baum-Quux"], ["nirgends", "-vorhanden-42"]]
    body = {"needles_b64": [base64.b64encode("".join(p).encode()).decode() for p in parts]}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.post("/_test/memory", json=body)
        assert resp.status == 200
        result = await resp.json()
    assert result["found"] == [True, False]
    assert result["objects"] == {}
