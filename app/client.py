"""A small async client of the Kreis signalling protocol.

Used by the console (`tui/`), the dial-in gateway (`sipgw/`) and the tests. It imports
no server code: it speaks docs/protocol.md over a WebSocket, exactly like a browser.

Incoming messages are kept in arrival order; `expect()` takes the first one of the
wanted types (others stay queued for later `expect()` calls), and `on_message`
callbacks see every message as it arrives. Both the queue and `history` keep at most
`kept` messages (the oldest go first), so a client that never calls `expect()` (the
console, the gateway) holds a bounded amount however long the meeting runs. A callback
that raises is logged and the reader carries on: one bad message must not end the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl as ssl_module
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

from app.protocol import UpMessage, encode

log = logging.getLogger(__name__)

KEPT = 500
"""Default for how many received messages the queue and the history each keep."""


class ClientError(Exception):
    """The connection failed or closed."""


class ServerError(ClientError):
    """The server answered with an `error` message."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(f"{message.get('code')}: {message.get('message')}")
        self.code: str = str(message.get("code"))
        self.message: dict[str, Any] = message
        self.retry_after: int | None = message.get("retry_after")


def ws_url(server_url: str) -> str:
    """The WebSocket URL for a server base URL (http(s)://host[:port] or ws(s)://…/ws)."""
    url = server_url.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    elif not url.startswith(("ws://", "wss://")):
        url = "ws://" + url
    return url if url.endswith("/ws") else url + "/ws"


def _kind(data: object) -> str:
    """A message's type for a log line (bounded; never its content)."""
    kind = data.get("type") if isinstance(data, dict) else None
    return str(kind)[:32] if isinstance(kind, str) else "?"


class KreisClient:
    """One signalling connection to a Kreis server."""

    def __init__(
        self,
        server_url: str,
        kind: str = "browser",
        lang: str = "en",
        ssl: ssl_module.SSLContext | bool | None = None,
        headers: dict[str, str] | None = None,
        kept: int = KEPT,
    ) -> None:
        self.url = ws_url(server_url)
        self.kind = kind
        self.lang = lang
        self._ssl = ssl
        self._headers = headers or {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: deque[dict[str, Any]] = deque(maxlen=kept)
        self._arrived = asyncio.Condition()
        self._history: deque[dict[str, Any]] = deque(maxlen=kept)
        self.hello: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.on_message: list[Callable[[dict[str, Any]], Any]] = []

    @property
    def history(self) -> list[dict[str, Any]]:
        """The last `kept` messages received, oldest first (tests and debugging)."""
        return list(self._history)

    async def connect(self, timeout: float = 10) -> dict[str, Any]:
        """Opens the socket, sends `hello` and returns the server's `hello`."""
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(
                self.url,
                ssl=self._ssl if self._ssl is not None else True,
                headers=self._headers,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
                heartbeat=30,
                max_msg_size=4 * 1024 * 1024,
            )
        except BaseException:
            await self._session.close()
            raise
        self._reader = asyncio.create_task(self._read())
        await self.send({"type": "hello", "version": 1, "kind": self.kind, "lang": self.lang})
        self.hello = await self.expect("hello", timeout=timeout)
        return self.hello

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    log.warning("server sent a frame that is not JSON")
                    continue
                self._history.append(data)
                for callback in list(self.on_message):
                    await self._call(callback, data)
                async with self._arrived:
                    self._pending.append(data)
                    self._arrived.notify_all()
        finally:
            self.close_code = self._ws.close_code
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    @staticmethod
    async def _call(callback: Callable[[dict[str, Any]], Any], data: dict[str, Any]) -> None:
        """Runs one `on_message` callback; its failure is logged, never ends the reader."""
        try:
            result = callback(data)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("an on_message callback failed on a %s message", _kind(data))

    async def send(self, msg: UpMessage | dict[str, Any]) -> None:
        """Sends one message (a protocol dataclass or a raw dict, for tests of bad input)."""
        if self._ws is None or self._ws.closed:
            raise ClientError("not connected")
        data = encode(msg) if isinstance(msg, UpMessage) else msg
        await self._ws.send_str(json.dumps(data))

    async def send_raw(self, text: str) -> None:
        """Sends a raw text frame (tests of malformed input)."""
        if self._ws is None or self._ws.closed:
            raise ClientError("not connected")
        await self._ws.send_str(text)

    async def expect(self, *types: str, timeout: float = 10) -> dict[str, Any]:
        """The first queued message of one of `types`; an `error` raises ServerError
        unless "error" is among the types."""
        wanted = set(types)

        def take() -> dict[str, Any] | None:
            for msg in self._pending:
                kind = msg.get("type")
                if kind in wanted or (kind == "error" and "error" not in wanted):
                    self._pending.remove(msg)
                    return msg
            return None

        async def wait() -> dict[str, Any]:
            async with self._arrived:
                while True:
                    msg = take()
                    if msg is not None:
                        return msg
                    if self.closed.is_set():
                        raise ClientError(f"connection closed while waiting for {types}")
                    await self._arrived.wait()

        msg = await asyncio.wait_for(wait(), timeout)
        if msg.get("type") == "error" and "error" not in wanted:
            raise ServerError(msg)
        return msg

    async def request(
        self, msg: UpMessage | dict[str, Any], *types: str, timeout: float = 10
    ) -> dict[str, Any]:
        """Sends `msg` and waits for one of `types` (or raises on `error`)."""
        await self.send(msg)
        return await self.expect(*types, timeout=timeout)

    def drain(self, *types: str) -> list[dict[str, Any]]:
        """Removes and returns every queued message of `types` (all if none given)."""
        taken: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        for msg in self._pending:
            (taken if not types or msg.get("type") in types else kept).append(msg)
        self._pending.clear()
        self._pending.extend(kept)
        return taken

    def latest(self, kind: str) -> dict[str, Any] | None:
        """The newest message of a type seen so far (queued or not)."""
        for msg in reversed(self._history):
            if msg.get("type") == kind:
                found: dict[str, Any] = msg
                return found
        return None

    async def close(self) -> None:
        """Closes the socket and the session; safe to call twice."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._session is not None:
            await self._session.close()
        self.closed.set()

    async def __aenter__(self) -> KreisClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
