"""The meeting logic shared by all handlers: entering rooms, the lobby, leaving, ending.

`Hub` owns the room store, the secret limiter and the media glue. Handlers (in
`app/handlers.py` and `app/moderation.py`) validate who may do what and then call the
hub. Lobby and room password are independent gates: the password is checked first,
then the entrant waits in the lobby; nothing but a leader's decision admits a guest.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from app.connection import Connection, Waiting
from app.protocol import (
    Joined,
    LobbyStatus,
    Removed,
    RoomEnded,
    WaitingForLeader,
)
from app.ratelimit import SecretLimiter
from app.rooms import Member, MemoryRoomStore, ResumeTicket, Room, new_id

if TYPE_CHECKING:
    from app.config import Config
    from app.media import Media

log = logging.getLogger(__name__)

LEADER_NAME = "Leitung"


class Refused(Exception):
    """A request is refused with an error code (sent to the connection by the caller)."""

    def __init__(self, code: str, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


class Hub:
    """Rooms, lobbies and the rules between them."""

    def __init__(self, config: Config, media: Media | None = None) -> None:
        self.config = config
        self.store = MemoryRoomStore()
        limits = config.limits
        self.limiter = SecretLimiter(
            limits.secret_attempts, limits.secret_window_seconds, limits.secret_lockout_seconds
        )
        self.media = media
        self.connections: set[Connection] = set()
        self.waiting: dict[str, set[Connection]] = {}
        self._knock_timers: dict[str, asyncio.TimerHandle] = {}
        self._reaper: asyncio.Task[None] | None = None

    # -- lifecycle

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for room in self.store.all():
            await self.end_room(room, notify=False)

    async def _reap(self) -> None:
        """Ends rooms that stayed empty too long and forgets expired resume tickets."""
        while True:
            await asyncio.sleep(1)
            await self._reap_once(time.monotonic())

    async def _reap_once(self, now: float) -> None:
        # Its own method so that no local variable outlives a room it ended: an ended
        # room must be unreachable at once, not when the next room happens to start.
        timeout = self.config.rooms.empty_timeout_seconds
        for room in self.store.all():
            for token, ticket in list(room.resume.items()):
                if ticket.expires < now:
                    del room.resume[token]
            if room.empty_since is not None and now - room.empty_since >= timeout:
                await self.end_room(room, notify=False)

    # -- helpers

    def room_url(self, slug: str) -> str:
        server = self.config.server
        base = server.public_url.rstrip("/")
        if not base:
            scheme = "https" if server.tls_cert else "http"
            host = f"[{server.host}]" if ":" in server.host else server.host
            base = f"{scheme}://{host}:{server.port}"
        return f"{base}/{slug}"

    def is_leader_of(self, conn: Connection, room: Room) -> bool:
        if conn.group is not None and conn.group == room.group:
            return True
        member = room.participants.get(conn.member.id) if conn.member else None
        return member is not None and member.role in ("leader", "coleader")

    async def check_secret(
        self, conn: Connection, scope: str, ok: Callable[[], bool | Awaitable[bool]]
    ) -> bool:
        """One rate-limited attempt at a secret (group or room password, gateway secret,
        PIN), counted per connection and per source address. While either is locked out
        the secret is not even looked at: Refused(rate_limited)."""
        keys = [("conn", f"{scope}:{conn.id}"), ("ip", f"{scope}:{conn.address}")]
        wait = self.limiter.retry_after(keys)
        if wait:
            raise Refused("rate_limited", wait)
        result = ok()
        right = await result if inspect.isawaitable(result) else result
        if right:
            self.limiter.succeeded(keys)
            return True
        # A gateway carries many callers from one address: a larger allowance.
        self.limiter.failed(keys, scale=10 if conn.gateway else 1)
        return False

    def new_pin(self) -> str:
        length = self.config.gateway.pin_length
        while True:
            pin = "".join(secrets.choice("0123456789") for _ in range(length))
            if not self.store.pin_in_use(pin) and pin[0] != "0":
                return pin

    # -- entering

    async def join(
        self, conn: Connection, slug: str, name: str, password: str | None, resume: str | None
    ) -> None:
        room = self.store.get(slug)
        if room is None:
            conn.waiting = Waiting(slug, name, password)
            self.waiting.setdefault(slug, set()).add(conn)
            conn.send(WaitingForLeader(slug))
            return
        if resume is not None:
            ticket = room.resume.pop(resume, None)
            if ticket is not None and ticket.expires >= time.monotonic():
                conn.id = ticket.member_id
                member = Member(conn.id, ticket.name, ticket.kind, ticket.role, conn)
                self._seat(conn, room, member)
                self.admit(room, member)
                return
        await self.enter(conn, room, name, password)

    async def enter(
        self, conn: Connection, room: Room, name: str, password: str | None, kind: str = ""
    ) -> None:
        """Password first, then the lobby (or straight in for the room's own leaders)."""
        if conn.group is not None and conn.group == room.group:
            member = Member(conn.id, name, conn.kind, "leader", conn)
            self._seat(conn, room, member)
            self.admit(room, member)
            return
        if name.casefold() in room.barred:
            raise Refused("barred")
        if room.settings.locked:
            raise Refused("room_locked")
        if len(room.participants) + len(room.lobby) >= self.config.rooms.max_participants:
            raise Refused("room_locked")
        if room.has_password and kind != "phone":

            def right_password() -> bool:
                if password is None:  # not an attempt: nothing to count
                    raise Refused("password_required")
                return room.check_password(password)

            if not await self.check_secret(conn, "room", right_password):
                raise Refused("bad_room_password")
        role = "phone" if kind == "phone" else "guest"
        member = Member(conn.id, name, kind or conn.kind, role, conn)
        self._seat(conn, room, member)
        # Phone callers always wait in the lobby, even when a leader switched it off.
        if room.settings.lobby or kind == "phone":
            room.lobby[member.id] = member
            room.touch()
            conn.send(LobbyStatus("waiting"))
            self._knock_timers[member.id] = asyncio.get_running_loop().call_later(
                self.config.rooms.knock_timeout_seconds, self._knock_timed_out, room, member
            )
            room.broadcast_lobby(knock=True)
        else:
            self.admit(room, member)

    def _stop_knock_timer(self, member_id: str) -> None:
        timer = self._knock_timers.pop(member_id, None)
        if timer is not None:
            timer.cancel()

    def _seat(self, conn: Connection, room: Room, member: Member) -> None:
        conn.room = room
        conn.member = member
        if conn.waiting is not None:
            self.waiting.get(conn.waiting.slug, set()).discard(conn)
            conn.waiting = None

    def admit(self, room: Room, member: Member) -> None:
        was_waiting = room.lobby.pop(member.id, None) is not None
        self._stop_knock_timer(member.id)
        member.resume = new_id("r_")
        room.participants[member.id] = member
        room.touch()
        peer = member.peer
        peer.send(
            Joined(
                member.id,
                member.role,
                room.slug,
                member.resume,
                room.settings.public(room.has_password),
            )
        )
        room.broadcast_participants()
        room.send_chat_history(peer)
        if member.role in ("leader", "coleader"):
            peer.send(room.lobby_msg())
            peer.send(room.state_msg(True, self.config.gateway.numbers))
        if was_waiting:
            room.broadcast_lobby()
        if self.media is not None:
            self.media.admitted(room, member)

    def deny(self, room: Room, member: Member, state: str = "denied") -> None:
        room.lobby.pop(member.id, None)
        self._stop_knock_timer(member.id)
        peer = member.peer
        peer.send(LobbyStatus(state))
        if isinstance(peer, Connection):
            peer.room = None
            peer.member = None
        peer.close_soon()
        room.touch()
        room.broadcast_lobby()

    def _knock_timed_out(self, room: Room, member: Member) -> None:
        self._knock_timers.pop(member.id, None)
        if member.id in room.lobby:
            self.deny(room, member, "timeout")

    async def room_started(self, room: Room) -> None:
        """Guests who came before the leader knock now, in the order they came."""
        for conn in list(self.waiting.pop(room.slug, set())):
            waiting = conn.waiting
            conn.waiting = None
            if waiting is None or conn.closing:
                continue
            try:
                await self.enter(conn, room, waiting.name, waiting.password)
            except Refused as refused:
                conn.error(refused.code, "join", refused.retry_after)

    # -- leaving

    async def leave(self, conn: Connection, dropped: bool) -> None:
        """Takes the connection out of its room, lobby, waiting list and watch list."""
        if conn.waiting is not None:
            self.waiting.get(conn.waiting.slug, set()).discard(conn)
            conn.waiting = None
        room, member = conn.room, conn.member
        conn.room = None
        conn.member = None
        if room is not None and member is not None and not room.ended:
            if member.id in room.lobby:
                room.lobby.pop(member.id, None)
                self._stop_knock_timer(member.id)
                room.broadcast_lobby()
            elif member.id in room.participants:
                del room.participants[member.id]
                if dropped and self.config.rooms.resume_grace_seconds > 0:
                    room.resume[member.resume] = ResumeTicket(
                        member.id,
                        member.name,
                        member.role,
                        member.kind,
                        time.monotonic() + self.config.rooms.resume_grace_seconds,
                    )
                if self.media is not None:
                    await self.media.left(room, member)
                room.broadcast_participants()
            room.touch()
        if dropped:
            for slug in list(conn.watching):
                watched = self.store.get(slug)
                if watched is not None:
                    watched.watchers.pop(conn.id, None)
                    watched.touch()
            conn.watching.clear()

    async def remove(self, room: Room, member: Member, bar: bool) -> None:
        if bar:
            room.barred.add(member.name.casefold())
        peer = member.peer
        peer.send(Removed(room.slug, bar))
        if isinstance(peer, Connection):
            await self.leave(peer, dropped=False)
            if peer.group is None:
                peer.close_soon()
        # A removed participant may not come back through a resume ticket.
        room.resume.pop(member.resume, None)

    async def end_room(self, room: Room, notify: bool = True) -> None:
        """Everyone is told; the room and everything it held are forgotten."""
        if room.ended:
            return
        self.store.remove(room.slug)
        ended = RoomEnded(room.slug)
        for member in list(room.lobby.values()):
            self._stop_knock_timer(member.id)
            if notify:
                member.peer.send(LobbyStatus("ended"))
            self._release(member.peer, room)
        for member in list(room.participants.values()):
            if self.media is not None:
                await self.media.left(room, member)
            if notify:
                member.peer.send(ended)
            self._release(member.peer, room)
        for peer in list(room.watchers.values()):
            if notify:
                peer.send(ended)
            if isinstance(peer, Connection):
                peer.watching.discard(room.slug)
        room.end()
        log.info("room ended")

    def _release(self, peer: object, room: Room) -> None:
        if isinstance(peer, Connection) and peer.room is room:
            peer.room = None
            peer.member = None
            if peer.group is None:
                peer.close_soon()
