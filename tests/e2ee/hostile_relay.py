"""A hostile server for the E2EE tests: a WebSocket proxy that rewrites signalling.

The pages load from the relay (`relay.url`), so their signalling WebSocket goes through
it; the relay forwards everything to the real Kreis server and back, and lets a test
rewrite what passes (`down_hooks`: server → page, `up_hooks`: page → server), inject
messages, drop a page's socket, and see every `e2ee_key` a page sends. That is exactly
the position of a compromised server. Plain pages and static files are passed through.

Loopback only (it binds 127.0.0.1), bounded: at most MAX_SOCKETS sockets, frames of at
most 64 KiB, at most MAX_KEYS recorded keys.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_SOCKETS = 32
MAX_FRAME = 64 * 1024
MAX_KEYS = 10_000
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-encoding",
    "content-length",
}

Hook = Callable[["RelayedSocket", dict[str, Any]], "dict[str, Any] | None"]
"""Takes one message on one socket; returns it (changed or not), or None to swallow it."""


@dataclass
class RelayedSocket:
    """One page's signalling socket as the relay sees it."""

    index: int
    page: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse
    id: str | None = None
    """The participant id from the last `joined` the server sent this page."""
    last: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The last message of each type sent down (after rewriting)."""

    async def send_down(self, msg: dict[str, Any]) -> None:
        self.last[str(msg.get("type"))] = msg
        await self.page.send_str(json.dumps(msg))

    async def drop(self) -> None:
        """The server's side of a network blip: both sockets close."""
        await self.upstream.close()
        await self.page.close()


class HostileRelay:
    """See the module docstring. `async with HostileRelay(server.url) as relay: …`"""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.down_hooks: list[Hook] = []
        self.up_hooks: list[Hook] = []
        self.sockets: list[RelayedSocket] = []
        self.keys: list[dict[str, Any]] = []
        """Every `e2ee_key` a page sent: {from (participant id), to, payload}."""
        self.refuse_until = 0.0
        """Until this `time.monotonic()`, new sockets are refused (a network outage)."""
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._count = 0

    async def __aenter__(self) -> HostileRelay:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=MAX_FRAME)
        app.router.add_get("/ws", self._socket)
        app.router.add_get("/{tail:.*}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sock in list(self.sockets):
            with contextlib.suppress(Exception):
                await sock.drop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def by_id(self, participant: str) -> RelayedSocket:
        """The newest socket of a participant."""
        return next(s for s in reversed(self.sockets) if s.id == participant)

    async def _page(self, request: web.Request) -> web.Response:
        assert self._session is not None
        async with self._session.get(self.upstream + request.path_qs) as r:
            body = await r.read()
            headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(body=body, status=r.status, headers=headers)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        if sum(not s.page.closed for s in self.sockets) >= MAX_SOCKETS:
            raise web.HTTPTooManyRequests()
        if time.monotonic() < self.refuse_until:
            raise web.HTTPServiceUnavailable()
        page = web.WebSocketResponse(max_msg_size=MAX_FRAME)
        await page.prepare(request)
        ws_url = self.upstream.replace("http://", "ws://") + "/ws"
        upstream = await self._session.ws_connect(ws_url, max_msg_size=MAX_FRAME)
        self._count += 1
        sock = RelayedSocket(self._count, page, upstream)
        self.sockets.append(sock)
        down = asyncio.create_task(self._pump_down(sock))
        try:
            async for frame in page:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                msg = json.loads(frame.data)
                if msg.get("type") == "e2ee_key" and len(self.keys) < MAX_KEYS:
                    self.keys.append(
                        {"from": sock.id, "to": msg.get("to"), "payload": msg.get("payload")}
                    )
                for hook in self.up_hooks:
                    msg = hook(sock, msg)
                    if msg is None:
                        break
                if msg is not None and not upstream.closed:
                    await upstream.send_str(json.dumps(msg))
        finally:
            await upstream.close()
            down.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await down
        return page

    async def _pump_down(self, sock: RelayedSocket) -> None:
        async for frame in sock.upstream:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            msg: dict[str, Any] | None = json.loads(frame.data)
            for hook in self.down_hooks:
                assert msg is not None
                msg = hook(sock, msg)
                if msg is None:
                    break
            if msg is None:
                continue
            if msg.get("type") == "joined":
                sock.id = str(msg.get("id"))
            if not sock.page.closed:
                await sock.send_down(msg)
        await sock.page.close()


# --- what the relay can do with a key it got: the engine's formats, in Python -------------


class RelayIdentity:
    """The relay's own P-256 key pair: what it puts in a forged or swapped entry."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = base64.b64encode(raw).decode("ascii")

    def unwrap(
        self, sender_public_key: str, sender: str, receiver: str, payload: str
    ) -> tuple[int, bytes]:
        """Opens an `e2ee_key` payload sent to the relay's key without the room secret
        (keys.js `unwrapMediaKey`); raises when it does not open."""
        peer = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), base64.b64decode(sender_public_key)
        )
        shared = self.private.exchange(ec.ECDH(), peer)
        info = f"kreis-e2ee-v1 wrap\0{sender}\0{receiver}".encode()
        wrap = HKDF(hashes.SHA256(), 32, None, info).derive(shared)
        data = base64.b64decode(payload)
        plain = AESGCM(wrap).decrypt(data[:12], data[12:], info)
        return int.from_bytes(plain[1:5], "big"), plain[5:]


def decrypt_frame(raw_key: bytes, frame: bytes) -> bytes:
    """Decrypts one VP8 frame of the engine's format (frame.js); raises on a bad tag."""
    key = HKDF(hashes.SHA256(), 32, None, b"kreis-e2ee-v1 frame key").derive(raw_key)
    salt = bytearray(HKDF(hashes.SHA256(), 12, None, b"kreis-e2ee-v1 frame salt").derive(raw_key))
    trailer = frame[-12:]
    counter = int.from_bytes(trailer[4:8], "big")
    for i in range(4):
        salt[8 + i] ^= (counter >> (24 - 8 * i)) & 0xFF
    prefix_len = 10 if frame[0] & 0x01 == 0 else 3
    prefix = frame[:prefix_len]
    return prefix + AESGCM(key).decrypt(bytes(salt), frame[prefix_len:-12], prefix + trailer)


def key_id_of(frame: bytes) -> int:
    return int.from_bytes(frame[-12:-8], "big")
