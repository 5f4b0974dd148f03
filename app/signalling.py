"""The signalling WebSocket at /ws: reading, gating and dispatching messages.

Order of checks for every frame: size (aiohttp closes over-sized frames with 1009),
flood (closed with 1008), JSON shape and depth, `hello` first, the message's fields
(`app/protocol.py`), then who may send it (`app/routing.py`, one table for every
message), then its handler. A bad message gets an `error` with a stable code and the
connection stays open.
"""

from __future__ import annotations

import logging
from typing import Protocol

from aiohttp import WSMsgType, web

from app import protocol as p
from app.connection import Connection, error_text
from app.hub import Hub, Refused
from app.pseudonym import pseudonym
from app.routing import ROUTES
from app.security import address_key

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 8
"""WebSocket ping interval; a peer that misses the pong (half of it) is dropped, so a
vanished client is listed `away` within about 12 s (browsers also ping every 4 s)."""


class FrameRelay(Protocol):
    """Forwards frames for rooms on other cluster nodes (app/cluster/relay.py)."""

    async def got_frame(self, conn: Connection, text: str) -> bool: ...
    async def closed(self, conn: Connection) -> None: ...


async def handle_ws(
    request: web.Request,
    hub: Hub,
    address: str,
    relay: FrameRelay | None = None,
    group: str | None = None,
) -> web.WebSocketResponse:
    """`relay`: in a cluster, what forwards frames for rooms on other nodes. `group`:
    a cluster link whose entry node has signed the client in to that group."""
    limits = hub.config.limits
    source = address_key(address)
    strangers = sum(
        1
        for c in hub.connections
        if c.group is None and not c.gateway and address_key(c.address) == source
    )
    if strangers >= limits.connections_per_address:
        # Leaders and the gateway have logged in and do not count: one address full
        # of strangers' sockets never keeps a leader out.
        log.warning("refusing a connection: too many from %s", pseudonym(source))
        raise web.HTTPTooManyRequests(text="too many connections from this address")
    ws = web.WebSocketResponse(max_msg_size=limits.max_frame_bytes, heartbeat=HEARTBEAT_SECONDS)
    await ws.prepare(request)
    conn = Connection(ws, address)
    conn.group = group
    conn.start()
    hub.connections.add(conn)
    try:
        async for frame in ws:
            if frame.type == WSMsgType.BINARY:
                conn.error("bad_json")
                continue
            if frame.type != WSMsgType.TEXT:
                continue
            if not conn.count_message(limits.flood_messages_per_10s):
                log.warning("closing a flooding connection from %s", conn.tag)
                await ws.close(code=1008, message=b"flood")
                break
            if relay is None or not await relay.got_frame(conn, frame.data):
                await dispatch(hub, conn, frame.data)
    finally:
        hub.connections.discard(conn)
        if relay is not None:
            await relay.closed(conn)
        try:
            await hub.leave(conn, dropped=True)
        finally:
            await conn.stop()
    return ws


async def dispatch(hub: Hub, conn: Connection, text: str) -> None:
    ref: str | None = None
    try:
        data = p.decode_frame(text)
        ref = data.get("type") if isinstance(data.get("type"), str) else None
        msg = p.parse_up(data)
        if not conn.ready and msg.type != "hello":
            raise Refused("not_ready")
        if conn.ready and msg.type == "hello":
            raise Refused("not_allowed")
        route = ROUTES[msg.type]
        refusal = route.refusal(conn)
        if refusal is not None:
            raise Refused(refusal)
        await route.handler(hub, conn, msg)
    except p.ProtocolViolation as exc:
        conn.send(p.Error(exc.code, _detail(conn, exc.code, exc.detail), exc.ref or ref, None))
    except Refused as refused:
        conn.error(refused.code, ref, refused.retry_after)
    except Exception:
        kind = ref if ref in ROUTES else "bad"
        log.exception("handler failed for a %s message from %s", kind, conn.tag)
        conn.error("internal", ref)


def _detail(conn: Connection, code: str, detail: str) -> str:
    text = error_text(code, conn.lang)
    return f"{text} ({detail})" if detail else text
