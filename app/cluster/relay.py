"""Any node accepts any client and relays its signalling for rooms owned elsewhere.

Why a relay and not a redirect: the web page must keep one origin (its CSP allows
`connect-src 'self'`; the leader's sign-in and the resume token live in the page's
memory; and when the owner dies, the page must still reach a live node, which a page
redirected onto the dead owner's address cannot). The console and the gateway hold
one connection to one configured node. So the node a client reaches (its *entry*)
keeps the client's WebSocket and opens, per owner node, one *link*: a WebSocket to that
node's `/ws` on which it replays the client's `hello` and sign-in and then forwards the
messages for that node's rooms, and every message back. Only signalling passes through
the entry; media goes straight between the client and the owner's SFU (its ICE
candidates carry the owner's address).

A link carries the client's address in a header signed with the cluster key, so that
the owner's per-address limits count the client, not the entry; the owner never
relays a linked connection further. The same header names the group the client signed
in to on the entry: the owner takes the entry's word for it instead of checking the
password again (a second scrypt on every link would stand in the way of a failover).
When a link breaks (the owner died), the entry closes the client's connection with
1012: the client reconnects to the entry, joins again with its resume token, and the
entry routes it to the room's new owner.

Up messages are routed like this (everything else stays on the entry):
- naming a room (`join`, `watch`, leader commands, `create_room`, `check_slug`,
  `chat` to a room): to the room's owner, or here when the room is here or nowhere; a
  new room (`create_room`) goes to the least-loaded serving node;
- `dial_in`: to the owner of the PIN;
- `receive`: kept, and replayed on every new link after the sign-in (a gateway says it
  wants audio only before its `dial_in`), and sent over the member link once there is one;
- after a forwarded `join` or `dial_in`, the in-room messages (`up_offer`, `hand`, …,
  `leave`): over that link;
- `list_rooms`: answered here, merged from every node that holds a room of the group.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from app import protocol as p
from app.connection import Connection

if TYPE_CHECKING:
    from app.cluster.directory import Directory
    from app.config import ClusterConfig
    from app.hub import Hub

log = logging.getLogger(__name__)

RELAY_HEADER = "X-Kreis-Relay"
RELAY_MAX_AGE = 60
LIST_TIMEOUT = 3.0
IN_ROOM = {
    "leave",
    "hand",
    "media_state",
    "e2ee_state",
    "e2ee_key",
    "up_offer",
    "down_answer",
    "keyframe",
}


@dataclass(frozen=True)
class Relayed:
    """Who a link speaks for, as its verified header says."""

    address: str
    """The client's address (for the owner's per-address limits)."""
    group: str | None
    """The group the client signed in to on the entry, or None."""


def _relay_mac(key: str, stamp: str, address: str, group: str) -> str:
    text = f"relay\0{stamp}\0{address}\0{group}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def sign_relay(key: str, address: str, now: float, group: str | None = None) -> str:
    stamp = str(int(now))
    named = base64.urlsafe_b64encode(group.encode()).decode() if group else "-"
    return f"{stamp} {address} {named} {_relay_mac(key, stamp, address, group or '')}"


def verify_relay(key: str, header: str, now: float) -> Relayed | None:
    """The client a link speaks for, or None when the header is not ours."""
    parts = header.split(" ")
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    stamp, address, named, mac = parts
    if abs(now - int(stamp)) > RELAY_MAX_AGE:
        return None
    try:
        group = "" if named == "-" else base64.urlsafe_b64decode(named.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    good = _relay_mac(key, stamp, address, group)
    if not hmac.compare_digest(good, mac):
        return None
    return Relayed(address, group or None)


class OwnerDesk(Protocol):
    """What the relay uses of this node (`app.cluster.node.ClusterNode`): where rooms
    and PINs live. The node imports the relay; the relay sees the node only as this."""

    node_id: str
    state: str
    directory: Directory
    config: ClusterConfig

    async def place(self, slug: str) -> str | None: ...

    async def live_owner(self, slug: str) -> str | None: ...

    async def live_owner_of_pin(self, pin: str) -> str | None: ...

    async def suspect(self, node_id: str) -> None: ...


class LinkFailed(Exception):
    """The owner node could not be reached or refused the replayed sign-in."""


@dataclass(eq=False)
class Link:
    """One client's WebSocket to one owner node."""

    node_id: str
    ws: aiohttp.ClientWebSocketResponse
    collect: asyncio.Queue[dict[str, Any]] | None = None
    """While set, `room_list` answers go here instead of to the client."""
    pump: asyncio.Task[None] | None = None

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)


@dataclass
class Route:
    """What the entry remembers of one client connection (memory only)."""

    hello: str = ""
    signin: list[str] = field(default_factory=list)
    """The client's `gateway_auth`, replayed on every new link (a `login` is not: the
    link's header names the group the entry has checked)."""
    links: dict[str, Link] = field(default_factory=dict)
    member: Link | None = None
    """The link of the room the client joined (or knocks at) on another node."""
    join: str = ""
    """The client's last `join`, replayed when a room it waits for opens elsewhere."""
    receive: str = ""
    """The client's last `receive` (an audio-only gateway or console says so before it
    enters), replayed on every new link after the sign-in."""


Dispatch = Callable[[str], Awaitable[None]]


class Relay:
    """The entry side of every client connection on this node."""

    def __init__(self, node: OwnerDesk, hub: Hub, session: aiohttp.ClientSession) -> None:
        self.node = node
        self.hub = hub
        self.session = session
        self.routes: dict[str, Route] = {}

    # -- called by app/signalling.py for every frame and at the end

    async def got_frame(self, conn: Connection, text: str) -> bool:
        """True when the frame was forwarded (or answered) here; False: dispatch locally."""
        try:
            data = json.loads(text)
        except ValueError:
            return False
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return False
        kind: str = data["type"]
        route = self.routes.setdefault(conn.id, Route())
        if kind == "hello":
            route.hello = text
            return False
        if kind == "gateway_auth":
            route.signin.append(text)
            return False
        if kind in ("ping", "login"):  # a login is checked here; links carry its group
            return False
        if kind == "receive":
            route.receive = text
        try:
            return await self._route(conn, route, kind, data, text)
        except LinkFailed:
            conn.error("internal", kind)
            return True

    async def closed(self, conn: Connection) -> None:
        route = self.routes.pop(conn.id, None)
        if route is None:
            return
        for link in list(route.links.values()):
            await self._close(link)

    # -- routing

    async def _route(
        self, conn: Connection, route: Route, kind: str, data: dict[str, Any], text: str
    ) -> bool:
        if route.member is not None and (
            kind in IN_ROOM or kind == "receive" or (kind == "chat" and not data.get("room"))
        ):
            await route.member.send(text)
            if kind == "leave":
                route.member = None
            return True
        if kind == "list_rooms":
            if conn.group is None:
                return False
            await self._list_rooms(conn, route, conn.group)
            return True
        if kind == "dial_in":
            pin = data.get("pin")
            if not conn.gateway or not isinstance(pin, str) or self.hub.store.by_pin(pin):
                return False
            owner = await self.node.live_owner_of_pin(pin)
            if owner is None or owner == self.node.node_id:
                return False
            route.member = await self._forward(conn, route, owner, text)
            return True
        slug = data.get("slug") if kind in ("create_room", "check_slug") else data.get("room")
        if not isinstance(slug, str) or not slug or len(slug) > 128:
            return False
        if self.hub.store.get(slug) is not None:
            return False
        if kind == "join":
            route.join = text
        owner = await self.node.live_owner(slug)
        placed = False
        if owner is None and self._starts_room(conn, kind, data, slug):
            owner = await self.node.place(slug)
            placed = owner is not None
            if owner is None and self.node.state == "draining":
                conn.error("internal", kind)  # no serving node, and not here (as max_rooms)
                return True
            if owner is not None and conn.group is not None:
                await self.node.directory.add_group_node(conn.group, owner)
        if owner is None or owner == self.node.node_id:
            return False
        link = await self._forward(conn, route, owner, text)
        if kind == "join":
            route.member = link
        if placed:
            # Those who came back before the leader wait here: they wait at the room's
            # new home from now on (seated there as soon as it runs), not a poll later.
            for waiting in list(self.hub.waiting.get(slug, ())):
                await self.move_waiting(waiting, owner)
        return True

    def _starts_room(self, conn: Connection, kind: str, data: dict[str, Any], slug: str) -> bool:
        """Whether this message may start a room that no node holds: a leader's
        `create_room`, or a leader's resume token after the owner died (the room comes
        back on the least-loaded node). A guest's token never starts a room: the guest
        waits here until a leader has brought it back, then moves to its owner."""
        if kind == "create_room":
            return conn.group is not None
        token = data.get("resume")
        if kind not in ("join", "watch") or not isinstance(token, str):
            return False
        claim = self.hub.tokens.signer.verify(token, slug, time.time())
        return claim is not None and claim.role == "leader"

    async def move_waiting(self, conn: Connection, owner: str) -> None:
        """A room this connection waits for has opened on another node: knock there."""
        route = self.routes.get(conn.id)
        waiting = conn.waiting
        if route is None or not route.join or waiting is None:
            # not waiting here any more: seated, or moved already (the poll and a
            # leader's placement can both get here; a join replayed twice would spend
            # its resume token on the first and knock with the second)
            return
        self.hub.waiting.get(waiting.slug, set()).discard(conn)
        conn.waiting = None
        try:
            route.member = await self._forward(conn, route, owner, route.join)
        except LinkFailed:
            conn.close_soon(1012)

    async def _forward(self, conn: Connection, route: Route, node_id: str, text: str) -> Link:
        link = route.links.get(node_id)
        if link is None or link.ws.closed:
            link = await self._open(conn, route, node_id)
        try:
            await link.send(text)
        except (ConnectionError, RuntimeError) as exc:
            raise LinkFailed(str(exc)) from None
        return link

    async def _open(self, conn: Connection, route: Route, node_id: str) -> Link:
        node = await self.node.directory.node(node_id)
        if node is None:
            raise LinkFailed("node gone")
        url = node.address.replace("http", "ws", 1) + "/ws"
        header = sign_relay(self.node.config.key, conn.address, time.time(), conn.group)
        try:
            ws = await self.session.ws_connect(
                url,
                headers={RELAY_HEADER: header},
                heartbeat=10,
                timeout=aiohttp.ClientWSTimeout(ws_close=2),
            )
        except (aiohttp.ClientError, OSError) as exc:
            await self.node.suspect(node_id)
            raise LinkFailed(str(exc)) from None
        link = Link(node_id, ws)
        try:
            await ws.send_str(route.hello)
            await self._expect(ws, ("hello",))
            for signin in route.signin:
                await ws.send_str(signin)
                await self._expect(ws, ("gateway_ok",))
            if route.receive:
                await ws.send_str(route.receive)  # no answer to wait for
        except (TimeoutError, LinkFailed, ConnectionError, RuntimeError) as exc:
            await ws.close()
            raise LinkFailed(str(exc)) from None
        route.links[node_id] = link
        link.pump = asyncio.create_task(self._pump(conn, route, link))
        return link

    async def _expect(self, ws: aiohttp.ClientWebSocketResponse, kinds: tuple[str, ...]) -> None:
        async with asyncio.timeout(5):
            while True:
                frame = await ws.receive()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    raise LinkFailed("closed during sign-in")
                kind = json.loads(frame.data).get("type")
                if kind in kinds:
                    return
                if kind == "error":
                    raise LinkFailed("sign-in refused")

    async def _pump(self, conn: Connection, route: Route, link: Link) -> None:
        """Everything the owner says goes to the client; when the link breaks, the
        client's connection closes so that it reconnects (and is routed anew)."""
        async for frame in link.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(frame.data)
                if link.collect is not None and data.get("type") == "room_list":
                    link.collect.put_nowait(data)
                    continue
                conn.send(p.parse_down(data))
            except (ValueError, p.ProtocolViolation):
                log.warning("dropping an unreadable message from node %s", link.node_id)
        if route.links.get(link.node_id) is link:
            del route.links[link.node_id]
        if route.member is link:
            route.member = None
        code = link.ws.close_code or 1012
        conn.close_soon(1012 if code in (1006, 1011, 1012) else code)

    async def _close(self, link: Link) -> None:
        with contextlib.suppress(Exception):
            await link.ws.close()
        if link.pump is not None:
            link.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link.pump

    async def _list_rooms(self, conn: Connection, route: Route, group: str) -> None:
        rooms = [r.summary() for r in self.hub.store.by_group(group)]
        for node_id in await self.node.directory.group_nodes(group):
            if node_id == self.node.node_id:
                continue
            try:
                link = route.links.get(node_id) or await self._open(conn, route, node_id)
            except LinkFailed:
                continue
            link.collect = asyncio.Queue()
            try:
                await link.send(json.dumps({"type": "list_rooms"}))
                async with asyncio.timeout(LIST_TIMEOUT):
                    answer = await link.collect.get()
                listed = answer.get("rooms")
                if isinstance(listed, list):
                    rooms.extend(r for r in listed if isinstance(r, dict))
            except (TimeoutError, ConnectionError, RuntimeError):
                log.warning("node %s did not list its rooms in time", node_id)
            finally:
                link.collect = None
        conn.send(p.RoomList(rooms))
