"""app/client.py against a small real WebSocket server (aiohttp on loopback).

The server here is not Kreis: it answers `hello` and then sends whatever a test asks
for, so the client's own rules can be seen: what it keeps, and what a failing
callback does to the connection.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web

from app.client import KreisClient


async def _server(aiohttp_server: Any, script: list[dict[str, Any]]) -> Any:
    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.receive()  # the client's hello
        await sock.send_json({"type": "hello", "version": 1})
        await sock.receive()  # the test's ping: the client is connected
        for msg in script:
            await sock.send_json(msg)
        await sock.send_json({"type": "pong"})  # the end marker
        async for _frame in sock:
            pass
        return sock

    app = web.Application()
    app.router.add_get("/ws", ws)
    return await aiohttp_server(app)


async def test_history_and_queue_are_bounded(aiohttp_server: Any) -> None:
    server = await _server(aiohttp_server, [{"type": "chat", "n": i} for i in range(50)])
    client = KreisClient(str(server.make_url("/")), kept=10)
    try:
        await client.connect()
        await client.request({"type": "ping"}, "pong")
        assert len(client.history) == 10
        assert client.history[-1]["type"] == "pong"
        assert client.history[0]["n"] == 41  # the oldest went first
        queued = client.drain("chat")
        assert [m["n"] for m in queued] == list(range(41, 50))
    finally:
        await client.close()


async def test_a_failing_callback_is_logged_and_reading_goes_on(
    aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await _server(aiohttp_server, [{"type": "chat", "n": 1}, {"type": "chat", "n": 2}])
    client = KreisClient(str(server.make_url("/")))
    seen: list[int] = []

    async def fragile(msg: dict[str, Any]) -> None:
        if msg.get("type") == "chat":
            seen.append(msg["n"])
            if msg["n"] == 1:
                raise ValueError("a bug in a handler")

    client.on_message.append(fragile)
    try:
        with caplog.at_level(logging.ERROR, logger="app.client"):
            await client.connect()
            await client.request({"type": "ping"}, "pong")
        assert seen == [1, 2]
        assert not client.closed.is_set()
        assert any("callback failed on a chat message" in r.getMessage() for r in caplog.records)
    finally:
        await client.close()
