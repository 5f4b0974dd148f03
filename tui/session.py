"""The console's side of one leader session: between the widgets and the socket.

`ConsoleSession` wraps `app.client.KreisClient`. It logs in, lists and creates rooms,
watches one room and sends the leader's room commands; every protocol message that
arrives updates the `RoomView` it holds and is turned into a Textual message
(tui/events.py) posted to the app. When the connection drops it reconnects with
backoff, logs in again with the password it keeps in memory only (never on disk) and
watches the same room again, so the room and its lobby queue survive the drop.

Commands without an answer of their own (admit, deny, …) are sent and forgotten; an
`error` that comes back for them is posted as `ServerNotice`. Requests that have an
answer (login → login_ok, list_rooms → room_list, …) wait for it here, matching errors
by their `ref`, because the client's `expect()` would hand any error to whoever waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl as ssl_module
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from textual.message import Message

from app.client import ClientError, KreisClient
from app.protocol import (
    Admit,
    AdmitAll,
    ChatUp,
    CheckSlug,
    CreateRoom,
    Deny,
    EndRoom,
    ListRooms,
    Login,
    LowerHand,
    MuteAll,
    MuteRequest,
    Promote,
    Remove,
    SetDialIn,
    SetE2ee,
    SetLobby,
    SetLock,
    SetPassword,
    Unwatch,
    UpMessage,
    Watch,
)
from tui.errors import ConsoleError
from tui.events import ConnectionChanged, Knock, RoomChanged, RoomClosed, ServerNotice

log = logging.getLogger(__name__)

CHAT_KEPT = 500
"""Chat lines kept in memory for the watched room (nothing is written to disk)."""


def base_url(server_url: str) -> str:
    """The http(s) base URL for what the leader typed (https unless it is loopback)."""
    url = server_url.strip().rstrip("/")
    if url.startswith("ws://"):
        url = "http://" + url[5:]
    elif url.startswith("wss://"):
        url = "https://" + url[6:]
    elif not url.startswith(("http://", "https://")):
        local = url.startswith(("localhost", "127.", "[::1]"))
        url = ("http://" if local else "https://") + url
    return url.removesuffix("/ws")


@dataclass
class RoomView:
    """What the console knows about the room it watches."""

    slug: str
    url: str = ""
    """The invitation link to share with the group (`room_created.url`, then
    `room_state.invite_url`; only the bare address until the server sends one)."""
    settings: dict[str, bool] = field(default_factory=dict)
    """lobby, locked, has_password, e2ee, dial_in."""
    dial_in_pin: str | None = None
    dial_in_numbers: list[str] = field(default_factory=list)
    entrants: list[dict[str, Any]] = field(default_factory=list)
    """The lobby queue, oldest first."""
    refused: int = 0
    """Knocks the server turned away at a gate (locked, full, password, bar)."""
    participants: list[dict[str, Any]] = field(default_factory=list)
    chat: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CHAT_KEPT))
    chat_total: int = 0
    """Chat messages received so far (the deque forgets the oldest)."""
    resume: str | None = None
    """The server's latest resume token for this room (memory only, a secret): after a
    server restart, `watch` with it starts the room again with the same people."""

    def entrant(self, pid: str) -> dict[str, Any] | None:
        return next((e for e in self.entrants if e.get("id") == pid), None)

    def participant(self, pid: str) -> dict[str, Any] | None:
        return next((p for p in self.participants if p.get("id") == pid), None)


@dataclass
class _Waiter:
    types: set[str]
    ref: str
    future: asyncio.Future[dict[str, Any]]
    room: str | None = None


class ConsoleSession:
    """A logged-in leader's connection, its watched room and its reconnects."""

    def __init__(
        self,
        server_url: str,
        lang: str = "en",
        post: Callable[[Message], object] | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
    ) -> None:
        self.server_url = base_url(server_url) if server_url else ""
        self.lang = lang
        self.post: Callable[[Message], object] = post or (lambda _m: None)
        self._ssl = ssl
        self.group = ""
        self._password = ""  # memory only, for re-login after a drop
        self.client: KreisClient | None = None
        self.room: RoomView | None = None
        self.rooms: list[dict[str, Any]] = []
        self.status = "offline"
        self._waiters: list[_Waiter] = []
        self._closing = False
        self._guard: asyncio.Task[None] | None = None
        self.reconnect_delays = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

    # ------------------------------------------------------------------ connection

    async def login(self, group: str, password: str, server_url: str | None = None) -> None:
        """Connects and logs in; raises ConsoleError with a code the leader can act on."""
        if server_url is not None:
            self.server_url = base_url(server_url)
        self.group, self._password = group, password
        await self._open()
        self.status = "online"

    async def _open(self) -> None:
        """A new connection, `hello` and `login`; replaces any old connection."""
        old, self.client = self.client, None
        if old is not None:
            await old.close()
        client = KreisClient(self.server_url, kind="console", lang=self.lang, ssl=self._ssl)
        client.on_message.append(self._got)
        try:
            await client.connect(timeout=10)
        except aiohttp.ClientConnectorCertificateError as exc:
            await client.close()
            raise ConsoleError("bad_certificate") from exc
        except ssl_module.SSLCertVerificationError as exc:
            await client.close()
            raise ConsoleError("bad_certificate") from exc
        except TimeoutError as exc:
            await client.close()
            raise ConsoleError("timeout") from exc
        except (aiohttp.ClientError, OSError, ClientError) as exc:
            await client.close()
            raise ConsoleError("unreachable") from exc
        self.client = client
        try:
            await self._request(Login(group=self.group, password=self._password), "login_ok")
        except ConsoleError:
            self.client = None
            await client.close()
            raise
        self._guard = asyncio.create_task(self._guard_connection(client))

    def audio_credentials(self) -> tuple[str, str, str]:
        """Server, group and password for the audio connection (tui/audio.py), which
        logs in on its own socket; the password still lives in memory only."""
        return self.server_url, self.group, self._password

    async def close(self) -> None:
        """Leaves for good: no reconnect, the socket closed, the password forgotten."""
        self._closing = True
        self._password = ""
        if self._guard is not None:
            self._guard.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._guard
        if self.client is not None:
            await self.client.close()
        self.status = "offline"

    async def _guard_connection(self, client: KreisClient) -> None:
        """Waits for the socket to drop, then reconnects with backoff until it works."""
        await client.closed.wait()
        if self._closing or client is not self.client:
            return
        log.info("signalling connection lost; reconnecting")
        self._fail_waiters(ConsoleError("unreachable"))
        self.status = "reconnecting"
        self.post(ConnectionChanged("reconnecting"))
        attempt = 0
        while not self._closing:
            delay = self.reconnect_delays[min(attempt, len(self.reconnect_delays) - 1)]
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await self._open()
            except ConsoleError as exc:
                log.info("reconnect attempt %d failed: %s", attempt, exc.code)
                self.post(ConnectionChanged("reconnecting", reason=exc.code))
                if exc.code == "rate_limited" and exc.retry_after:
                    await asyncio.sleep(exc.retry_after)
                continue
            break
        if self._closing:
            return
        room = self.room
        if room is not None:
            try:
                await self._request(
                    Watch(room=room.slug, resume=room.resume), "room_state", room=room.slug
                )
            except ConsoleError as exc:
                if exc.code in ("no_such_room", "not_allowed"):
                    self.room = None
                    self.post(RoomClosed(room.slug, "gone"))
        self.status = "online"
        self.post(ConnectionChanged("online"))

    # ------------------------------------------------------------------ requests

    async def _send(self, msg: UpMessage | dict[str, Any]) -> None:
        if self.client is None:
            raise ConsoleError("unreachable")
        try:
            await self.client.send(msg)
        except (ClientError, ConnectionError, aiohttp.ClientError) as exc:
            raise ConsoleError("unreachable") from exc

    async def _request(
        self, msg: UpMessage, *types: str, room: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """Sends `msg` and waits for one of `types` (for `room`, if given) or its error."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(set(types), msg.type, loop.create_future(), room)
        self._waiters.append(waiter)
        try:
            await self._send(msg)
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except TimeoutError as exc:
            raise ConsoleError("timeout") from exc
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _fail_waiters(self, error: ConsoleError) -> None:
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        self._waiters.clear()

    # ------------------------------------------------------------------ incoming

    def _got(self, msg: dict[str, Any]) -> None:
        """Every incoming message; a bug in handling one must not end the connection."""
        try:
            self._handle(msg)
        except Exception:
            log.exception("could not handle a %s message", str(msg.get("type"))[:32])

    def _handle(self, msg: dict[str, Any]) -> None:
        """Updates state, answers waiters, posts events."""
        kind = str(msg.get("type"))
        handler = getattr(self, f"got_{kind}", None)
        if handler is not None:
            handler(msg)
        if kind == "error":
            self._got_error(msg)
            return
        for waiter in list(self._waiters):
            if kind in waiter.types and (waiter.room is None or msg.get("room") == waiter.room):
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(msg)
                break

    def _got_error(self, msg: dict[str, Any]) -> None:
        error = ConsoleError(
            str(msg.get("code")), str(msg.get("message") or ""), msg.get("retry_after")
        )
        ref = msg.get("ref")
        for waiter in list(self._waiters):
            if ref is None or waiter.ref == ref:
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_exception(error)
                return
        self.post(
            ServerNotice(error.code, error.server_message, ref, error.retry_after, detail=dict(msg))
        )

    def _mine(self, msg: dict[str, Any]) -> RoomView | None:
        room = self.room
        return room if room is not None and msg.get("room") == room.slug else None

    def got_resume_token(self, msg: dict[str, Any]) -> None:
        room = self._mine(msg)
        if room is not None and isinstance(msg.get("token"), str):
            room.resume = msg["token"]

    def got_room_list(self, msg: dict[str, Any]) -> None:
        self.rooms = list(msg.get("rooms") or [])

    def got_room_state(self, msg: dict[str, Any]) -> None:
        room = self._mine(msg)
        if room is None:
            return
        room.settings = dict(msg.get("settings") or {})
        room.dial_in_pin = msg.get("dial_in_pin")
        room.dial_in_numbers = list(msg.get("dial_in_numbers") or [])
        if msg.get("invite_url"):  # the invitation link, with its ?k= code
            room.url = str(msg["invite_url"])
        self.post(RoomChanged(room.slug, "state"))

    def got_lobby_queue(self, msg: dict[str, Any]) -> None:
        room = self._mine(msg)
        if room is None:
            return
        before = {e.get("id") for e in room.entrants}
        room.entrants = list(msg.get("entrants") or [])
        refused = msg.get("refused")
        room.refused = refused if isinstance(refused, int) and not isinstance(refused, bool) else 0
        self.post(RoomChanged(room.slug, "lobby"))
        if msg.get("knock"):
            new = [e for e in room.entrants if e.get("id") not in before]
            name = str(new[-1].get("name", "")) if new else ""
            self.post(Knock(room.slug, name))

    def got_participants(self, msg: dict[str, Any]) -> None:
        room = self._mine(msg)
        if room is None:
            return
        room.participants = list(msg.get("participants") or [])
        self.post(RoomChanged(room.slug, "participants"))

    def got_chat(self, msg: dict[str, Any]) -> None:
        room = self._mine(msg)
        if room is None:
            return
        if msg.get("history") and any(
            m.get("ts") == msg.get("ts") and m.get("text") == msg.get("text") for m in room.chat
        ):
            return  # a re-watch after a reconnect repeats the history we already have
        room.chat.append(msg)
        room.chat_total += 1
        self.post(RoomChanged(room.slug, "chat"))

    def got_room_ended(self, msg: dict[str, Any]) -> None:
        room = self._mine(msg)
        if room is None:
            return
        self.room = None
        self.post(RoomClosed(room.slug, "ended"))

    # ------------------------------------------------------------------ rooms

    async def list_rooms(self) -> list[dict[str, Any]]:
        """The group's live rooms."""
        await self._request(ListRooms(), "room_list")
        return self.rooms

    async def check_slug(self, slug: str) -> dict[str, Any]:
        """The server's verdict on a slug (ok, warning, suggestion, reason)."""
        return await self._request(CheckSlug(slug=slug), "slug_check")

    async def create_room(
        self, slug: str, lobby: bool = True, password: str | None = None, dial_in: bool = False
    ) -> RoomView:
        """Creates and starts a room and watches it."""
        self.room = RoomView(slug)
        try:
            answer = await self._request(
                CreateRoom(slug=slug, lobby=lobby, password=password, dial_in=dial_in),
                "room_created",
            )
        except ConsoleError:
            self.room = None
            raise
        # The room secret for E2EE goes in the link's fragment, which browsers never send to
        # the server (docs/security.md): whoever opens this full link can verify the others.
        secret = secrets.token_urlsafe(32)
        self.room.url = str(answer.get("url") or f"{self.server_url}/{slug}") + f"#s={secret}"
        return self.room

    async def watch(self, slug: str) -> RoomView:
        """Follows a live room of the group (lobby, participants, chat)."""
        if self.room is not None and self.room.slug != slug:
            await self.unwatch()
        self.room = RoomView(slug, url=f"{self.server_url}/{slug}")
        try:
            await self._request(Watch(room=slug), "room_state", room=slug)
        except ConsoleError:
            self.room = None
            raise
        return self.room

    async def unwatch(self) -> None:
        """Stops following the room (it keeps running)."""
        room, self.room = self.room, None
        if room is not None:
            with contextlib.suppress(ConsoleError):
                await self._send(Unwatch(room=room.slug))

    def _slug(self) -> str:
        if self.room is None:
            raise ConsoleError("no_such_room")
        return self.room.slug

    # ------------------------------------------------------------------ room commands

    async def admit(self, pid: str) -> None:
        await self._send(Admit(room=self._slug(), id=pid))

    async def deny(self, pid: str) -> None:
        await self._send(Deny(room=self._slug(), id=pid))

    async def admit_all(self) -> None:
        await self._send(AdmitAll(room=self._slug()))

    async def whisper(self, pid: str, text: str) -> None:
        """A chat message to one lobby entrant (or participant)."""
        await self._send(ChatUp(text=text, to=pid, room=self._slug()))

    async def chat(self, text: str) -> None:
        """A chat message to the whole room."""
        await self._send(ChatUp(text=text, room=self._slug()))

    async def mute_request(self, pid: str, ask: bool = True) -> None:
        """Asks the person to switch their microphone off (they decide), or, with
        `ask=False`, switches it off for them (they can switch it on again)."""
        await self._send(MuteRequest(room=self._slug(), id=pid, ask=ask))

    async def mute_all(self) -> None:
        """Switches off every microphone in the room but our own."""
        await self._send(MuteAll(room=self._slug()))

    async def lower_hand(self, pid: str) -> None:
        await self._send(LowerHand(room=self._slug(), id=pid))

    async def remove(self, pid: str, bar: bool = False) -> None:
        await self._send(Remove(room=self._slug(), id=pid, bar=bar))

    async def promote(self, pid: str) -> None:
        await self._send(Promote(room=self._slug(), id=pid))

    async def set_lock(self, locked: bool) -> None:
        await self._send(SetLock(room=self._slug(), locked=locked))

    async def set_lobby(self, on: bool) -> None:
        await self._send(SetLobby(room=self._slug(), on=on))

    async def set_password(self, password: str | None) -> None:
        """Sets (4–128 characters) or clears (None) the room password."""
        await self._send(SetPassword(room=self._slug(), password=password))

    async def set_dial_in(self, on: bool) -> None:
        await self._send(SetDialIn(room=self._slug(), on=on))

    async def set_e2ee(self, on: bool, drop_phones: bool = False) -> None:
        """Raises ConsoleError("phones_present") when phones would be dropped."""
        slug = self._slug()
        await self._request(
            SetE2ee(room=slug, on=on, drop_phones=drop_phones), "room_state", room=slug
        )

    async def end_room(self) -> None:
        await self._send(EndRoom(room=self._slug()))
