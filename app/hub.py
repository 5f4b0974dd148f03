"""The meeting logic shared by all handlers: entering rooms, the lobby, leaving, ending.

`Hub` owns the room store, the secret limiter and the media glue. Handlers (in
`app/handlers.py` and `app/moderation.py`) validate who may do what and then call the
hub. Lobby and room password are independent gates: the password is checked first,
then the entrant waits in the lobby; nothing but a leader's decision admits a guest.

A stranger learns nothing silently: whether a slug is unused, locked, needs a password
or bars them, the answer is the same `room_closed`, counted like a wrong secret (and
`rate_limited` past the limit). Only people holding the room's invitation (the `?k=`
code in the link the leader hands out) or its group's leaders get specific answers and
may wait for a room that has not started; an early knock waits for that group only,
so another group's leader cannot collect it by starting the same slug first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from app.comeback import ResumeDesk
from app.config import resume_key
from app.connection import Connection, Waiting
from app.logsetup import log_room_started
from app.protocol import (
    Joined,
    LeaderState,
    LobbyStatus,
    Removed,
    RoomEnded,
    WaitingForLeader,
)
from app.ratelimit import EventLimiter, SecretLimiter
from app.resume import FLAG_E2EE, FLAG_LOBBY, FLAG_LOCKED, ResumeClaim, new_token_id
from app.rooms import Member, MemoryRoomStore, ResumeTicket, Room, new_id
from app.security import address_key
from app.signin_ticket import SigninTickets

if TYPE_CHECKING:
    from app.config import Config
    from app.media import Media

log = logging.getLogger(__name__)

LEADER_NAME = "Leitung"


def invite_code(group_secret: str, slug: str) -> str:
    """The code in a room's invitation link (`?k=`): an HMAC of the slug under the
    group's password hash, a secret only the server holds. Nobody can make one for a
    slug without the server, a link for one room says nothing about another, and a new
    group password makes new links (the old ones still reach a live room)."""
    mac = hmac.new(group_secret.encode(), b"kreis-invite\0" + slug.encode(), hashlib.sha256)
    return base64.b32encode(mac.digest())[:12].decode("ascii").lower()


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
        self.knocks = EventLimiter(limits.knocks_per_address, limits.knock_window_seconds)
        self.lobby_chat = EventLimiter(limits.lobby_chat_per_minute, 60)
        self.slug_probes = EventLimiter(limits.slug_probes_per_address, limits.knock_window_seconds)
        self.media = media
        self.connections: set[Connection] = set()
        self.waiting: dict[str, set[Connection]] = {}
        self._knock_timers: dict[str, asyncio.TimerHandle] = {}
        self._reaper: asyncio.Task[None] | None = None
        self.tokens = ResumeDesk(config, self.limiter)
        self.signin_tickets = SigninTickets(resume_key(config))
        """A leader signs in again with the ticket from its last `login_ok`."""
        """Resume tokens: issued, refreshed, checked and revoked (app/comeback.py)."""

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
        """Ends rooms that stayed empty too long, forgets expired resume tickets and
        refreshes the resume tokens of everyone in a room."""
        while True:
            await asyncio.sleep(1)
            await self._reap_once(time.monotonic())

    async def _reap_once(self, now: float) -> None:
        # Its own method so that no local variable outlives a room it ended: an ended
        # room must be unreachable at once, not when the next room happens to start.
        timeout = self.config.rooms.empty_timeout_seconds
        wall = time.time()
        self.tokens.prune(wall)
        for room in self.store.all():
            expired = [t for t in room.resume.values() if t.expires < now]
            for ticket in expired:
                del room.resume[ticket.member_id]
                self.tokens.revoke(ticket.token_id)
            if expired:
                room.broadcast_participants()
            if room.empty_since is not None and now - room.empty_since >= timeout:
                await self.end_room(room, notify=False)
                continue
            self.tokens.refresh(room, wall)

    # -- resume tokens (the bookkeeping is app/comeback.py)

    def _restart_room(self, slug: str, claim: ResumeClaim) -> Room | None:
        """A leader's token brings back the room it names after a restart: same
        instance (so the others' tokens fit), same group, same switches. The room
        password, PIN, chat and bar list are gone with the old process."""
        if claim.role != "leader" or claim.group not in self.config.groups:
            return None
        if len(self.store.all()) >= self.config.rooms.max_rooms:
            return None
        room = Room(slug, claim.group)
        room.instance = claim.instance
        room.invite_url = self.room_url(slug, claim.group)
        room.settings.lobby = bool(claim.flags & FLAG_LOBBY)
        room.settings.locked = bool(claim.flags & FLAG_LOCKED)
        room.settings.e2ee = bool(claim.flags & FLAG_E2EE)
        self.store.add(room)
        log_room_started(claim.group)
        log.info("room started again by a leader's resume token")
        return room

    async def restart_watched(self, conn: Connection, slug: str, token: str) -> Room | None:
        """`watch` with a token after a restart: the console's room starts again."""
        claim = self.tokens.claim(conn, slug, token)
        if claim is None or claim.member_id or claim.group != conn.group:
            return None
        room = self._restart_room(slug, claim)
        if room is not None:
            await self.room_started(room)
        return room

    # -- helpers

    def room_url(self, slug: str, group: str) -> str:
        """The invitation link a leader hands out: the room's URL with its `?k=` code."""
        server = self.config.server
        base = server.public_url.rstrip("/")
        if not base:
            scheme = "https" if server.tls_cert else "http"
            host = f"[{server.host}]" if ":" in server.host else server.host
            base = f"{scheme}://{host}:{server.port}"
        return f"{base}/{slug}?k={self.invite_code(slug, group)}"

    def invite_code(self, slug: str, group: str) -> str:
        config = self.config.groups.get(group)
        return invite_code(config.password_hash if config is not None else "", slug)

    def invited_group(self, conn: Connection, slug: str, invite: str | None) -> str | None:
        """The group whose invitation this join carries, else the group the connection
        leads, else None (a stranger)."""
        if invite:
            for group in self.config.groups:
                if hmac.compare_digest(self.invite_code(slug, group), invite):
                    return group
        return conn.group

    def is_leader_of(self, conn: Connection, room: Room) -> bool:
        if conn.group is not None and conn.group == room.group:
            return True
        member = room.participants.get(conn.member.id) if conn.member else None
        return member is not None and member.role in ("leader", "coleader")

    async def check_secret(
        self, conn: Connection, scope: str, ok: Callable[[], bool | Awaitable[bool]]
    ) -> bool:
        """One rate-limited attempt at a secret (group or room password, gateway secret,
        PIN), counted per connection and per source address *before* it is evaluated,
        so that parallel attempts cannot outrun the limit. While either key is locked
        out the secret is not even looked at: Refused(rate_limited)."""
        keys = self._secret_keys(conn, scope)
        # A gateway carries many callers from one address: a larger allowance.
        stamp = self.limiter.begin(keys, scale=10 if conn.gateway else 1)
        if stamp is None:
            raise Refused("rate_limited", self.limiter.retry_after(keys))
        try:
            result = ok()
            right = await result if inspect.isawaitable(result) else result
        except Refused as refused:
            if refused.code != "password_required":
                raise
            self.limiter.retract(keys, stamp)  # no password given: not an attempt
            raise
        if right:
            self.limiter.succeeded(keys, stamp)
        return bool(right)

    def _secret_keys(self, conn: Connection, scope: str) -> list[tuple[str, str]]:
        return [("conn", f"{scope}:{conn.id}"), ("ip", f"{scope}:{address_key(conn.address)}")]

    def new_pin(self) -> str:
        length = self.config.gateway.pin_length
        while True:
            pin = "".join(secrets.choice("0123456789") for _ in range(length))
            if not self.store.pin_in_use(pin) and pin[0] != "0":
                return pin

    # -- entering

    async def join(
        self,
        conn: Connection,
        slug: str,
        name: str,
        password: str | None,
        resume: str | None,
        invite: str | None = None,
    ) -> None:
        if resume is not None:
            claim = self.tokens.claim(conn, slug, resume)
            if claim is not None and await self._resume(conn, slug, claim):
                return
        room = self.store.get(slug)
        if conn.kind == "console" and conn.group is None:
            raise Refused("console_not_leader")
        self._count_knock(conn)
        group = self.invited_group(conn, slug, invite)
        if room is None or (group is not None and group != room.group):
            if group is None:
                await self._closed(conn)
            # An early knock waits for the group that invited it, and only for that one.
            self._check_lobby_share(conn)
            conn.waiting = Waiting(slug, name, password, group or "")
            self.waiting.setdefault(slug, set()).add(conn)
            conn.send(WaitingForLeader(slug))
            return
        await self.enter(conn, room, name, password, invited=group is not None)

    async def _resume(self, conn: Connection, slug: str, claim: ResumeClaim) -> bool:
        """Back in without the lobby, with a valid token (a lock keeps new people out,
        not admitted people coming back). False: the holder knocks as usual.

        No room (the server restarted): a leader's token starts it again; anyone
        else's waits for that, never starting a room by itself, so that a room that
        ended before the restart cannot be brought back by a guest."""
        if not claim.member_id or claim.kind != conn.kind or claim.name is None:
            return False
        room = self.store.get(slug)
        if room is None:
            room = self._restart_room(slug, claim)
            if room is None:
                self._check_lobby_share(conn)
                conn.waiting = Waiting(slug, claim.name, None, claim.group, claim)
                self.waiting.setdefault(slug, set()).add(conn)
                conn.send(WaitingForLeader(slug))
                return True
            await self._seat_resumed(conn, room, claim)
            await self.room_started(room)
            return True
        if claim.instance != room.instance or claim.group != room.group:
            return False  # a room started anew at this slug: its lobby decides
        if claim.name.casefold() in room.barred:
            return False
        await self._seat_resumed(conn, room, claim)
        return True

    async def _seat_resumed(self, conn: Connection, room: Room, claim: ResumeClaim) -> None:
        assert claim.name is not None
        present = room.participants.get(claim.member_id)
        if present is not None:
            # Its old socket has not noticed the drop yet: the returning one takes over.
            await self._displace(room, present)
        room.resume.pop(claim.member_id, None)
        self.tokens.spend(claim)
        member = Member(claim.member_id, claim.name, claim.kind, claim.role, conn)
        member.token_id = claim.token_id
        member.generation = claim.generation + 1
        self._seat(conn, room, member)
        self.admit(room, member)

    async def _displace(self, room: Room, member: Member) -> None:
        room.participants.pop(member.id, None)
        if self.media is not None:
            await self.media.left(room, member)
        peer = member.peer
        if isinstance(peer, Connection) and peer.member is member:
            peer.room = None
            peer.member = None
            peer.close_soon()

    def _count_knock(self, conn: Connection) -> None:
        """Knocks per source address; leaders and the gateway are not limited here."""
        if conn.gateway or conn.group is not None:
            return
        wait = self.knocks.allow([("ip", address_key(conn.address))])
        if wait:
            raise Refused("rate_limited", wait)

    def _check_lobby_share(self, conn: Connection) -> None:
        """One address may hold only so many places in lobbies and early knocks, so a
        flood from one address never fills a lobby for everyone else."""
        if conn.gateway or conn.group is not None:
            return
        source = address_key(conn.address)
        waiting = sum(
            1
            for other in self.connections
            if (other.waiting is not None or other.in_lobby)
            and other.group is None
            and address_key(other.address) == source
        )
        if waiting >= self.config.limits.lobby_per_address:
            raise Refused("rate_limited", self.config.limits.knock_window_seconds)

    async def _closed(self, conn: Connection) -> None:
        """The one answer a stranger gets for an unused, locked, password or barring
        room: counted like a wrong secret, so probing is rate-limited."""
        await self.check_secret(conn, "room", lambda: False)
        raise Refused("room_closed")

    async def enter(
        self,
        conn: Connection,
        room: Room,
        name: str,
        password: str | None,
        kind: str = "",
        invited: bool = True,
    ) -> None:
        """Password first, then the lobby (or straight in for the room's own leaders).

        `invited`: the entrant holds the room's invitation (or is a phone caller who
        gave its PIN) and may be told why a gate is shut; a stranger only learns
        `room_closed`."""
        if conn.kind == "console" and conn.group != room.group:
            raise Refused("console_not_leader")
        if conn.kind == "console" and room.settings.e2ee:
            # The console's audio is not end-to-end encrypted: like dial-in, refused.
            raise Refused("e2ee_console_audio")
        if conn.group is not None and conn.group == room.group:
            member = Member(new_id("p_"), name, conn.kind, "leader", conn)
            self._seat(conn, room, member)
            self.admit(room, member)
            return
        try:
            await self._pass_gates(conn, room, name, password, kind, invited)
        except Refused as refused:
            if refused.code not in ("password_required", "rate_limited"):
                # A knock turned away is still a knock: the leaders see that it happened.
                room.refused += 1
                room.broadcast_lobby()
            raise
        if kind != "phone":
            self._check_lobby_share(conn)
        role = "phone" if kind == "phone" else "guest"
        member = Member(new_id("p_"), name, kind or conn.kind, role, conn)
        self._seat(conn, room, member)
        # Phone callers always wait in the lobby, even when a leader switched it off.
        if room.settings.lobby or kind == "phone":
            room.lobby[member.id] = member
            room.touch()
            conn.send(LobbyStatus("waiting", leader_present=room.leader_present()))
            self._knock_timers[member.id] = asyncio.get_running_loop().call_later(
                self.config.rooms.knock_timeout_seconds, self._knock_timed_out, room, member
            )
            room.broadcast_lobby(knock=True)
        else:
            self.admit(room, member)

    async def _pass_gates(
        self,
        conn: Connection,
        room: Room,
        name: str,
        password: str | None,
        kind: str,
        invited: bool,
    ) -> None:
        """Lock, size, password and bar, in that order; Refused when a gate is shut."""
        full = len(room.participants) >= self.config.rooms.max_participants
        lobby_full = len(room.lobby) >= self.config.rooms.max_lobby
        if not invited:

            def gates_open() -> bool:
                right = not room.has_password or (
                    password is not None and room.check_password(password)
                )
                shut = room.settings.locked or full or lobby_full
                return right and not shut and name.casefold() not in room.barred

            if not await self.check_secret(conn, "room", gates_open):
                raise Refused("room_closed")
        else:
            if room.settings.locked or full:
                raise Refused("room_locked")
            if lobby_full:
                raise Refused("lobby_full")
            if room.has_password and kind != "phone":

                def right_password() -> bool:
                    if password is None:  # not an attempt: nothing to count
                        raise Refused("password_required")
                    return room.check_password(password)

                if not await self.check_secret(conn, "room", right_password):
                    raise Refused("bad_room_password")
            if name.casefold() in room.barred:
                raise Refused("barred")

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
        led = room.leader_present()
        if not member.token_id:
            member.token_id = new_token_id()
        resumable = member.kind != "phone" and self.tokens.on
        member.resume = self.tokens.issue(room, member, time.time()) if resumable else ""
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
        self.leaders_changed(room, led)
        if self.media is not None:
            self.media.admitted(room, member)

    def leaders_changed(self, room: Room, led: bool, successor: str | None = None) -> None:
        """Tells everyone when the room has no leader any more or has one again (`led`:
        whether it had one before the change); lobby entrants learn it too, so that
        their screen says honestly whether anyone is there to let them in."""
        present = room.leader_present()
        if present == led and successor is None:
            return
        msg = LeaderState(room.slug, present, successor)
        for peer in room.audience():
            peer.send(msg)
        for entrant in room.lobby.values():
            entrant.peer.send(LobbyStatus("waiting", leader_present=present))

    def _hand_over(self, room: Room, gone: Member) -> str | None:
        """When the last leader is gone, the co-leader who has been in longest leads
        the room; their next resume token says so. Returns their id."""
        if gone.role != "leader" or room.watchers:
            return None
        if any(m.role == "leader" for m in room.participants.values()):
            return None
        deputies = [m for m in room.participants.values() if m.role == "coleader"]
        if not deputies:
            return None
        successor = min(deputies, key=lambda m: m.since)
        successor.role = "leader"
        log.info("a co-leader took over a room whose leader left")
        return successor.id

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
        """Guests who came before the leader knock now, in the order they came: those
        invited by the group that started the room. Others keep waiting for theirs."""
        waiting_here = self.waiting.get(room.slug, set())
        for conn in list(waiting_here):
            waiting = conn.waiting
            if waiting is not None and waiting.group != room.group and not conn.closing:
                continue
            waiting_here.discard(conn)
            conn.waiting = None
            if waiting is None or conn.closing:
                continue
            claim = waiting.claim
            if (
                claim is not None
                and claim.instance == room.instance
                and self.tokens.still_valid(claim)
                and claim.name is not None
                and claim.name.casefold() not in room.barred
            ):
                await self._seat_resumed(conn, room, claim)
                continue
            try:
                await self.enter(conn, room, waiting.name, waiting.password)
            except Refused as refused:
                conn.error(refused.code, "join", refused.retry_after)
        if not waiting_here:
            self.waiting.pop(room.slug, None)

    # -- leaving

    async def leave(self, conn: Connection, dropped: bool) -> None:
        """Takes the connection out of its room, lobby, waiting list and watch list."""
        if conn.waiting is not None:
            self.waiting.get(conn.waiting.slug, set()).discard(conn)
            conn.waiting = None
        if dropped:
            # First the watch list: a leader's page that started the room both watches
            # it and sits in it, and a co-leader must take over when that page is gone.
            for slug in list(conn.watching):
                watched = self.store.get(slug)
                if watched is not None:
                    led = watched.leader_present()
                    watched.watchers.pop(conn.id, None)
                    watched.touch()
                    self.leaders_changed(watched, led)
            conn.watching.clear()
        room, member = conn.room, conn.member
        conn.room = None
        conn.member = None
        if room is not None and member is not None and not room.ended:
            if member.id in room.lobby:
                room.lobby.pop(member.id, None)
                self._stop_knock_timer(member.id)
                room.broadcast_lobby()
            elif member.id in room.participants:
                led = room.leader_present()
                del room.participants[member.id]
                # A phone call cannot come back (the gateway never resumes): gone is gone.
                resumable = member.kind != "phone"
                if dropped and resumable and self.tokens.on:
                    # Listed as away until the token is used, expires, or a leader
                    # removes them (which revokes it).
                    room.resume[member.id] = ResumeTicket(
                        member.id,
                        member.name,
                        member.role,
                        member.kind,
                        time.monotonic() + self.config.rooms.resume_grace_seconds,
                        member.token_id,
                    )
                else:  # left on purpose: their token seats nobody any more
                    self.tokens.revoke(member.token_id)
                if self.media is not None:
                    await self.media.left(room, member)
                successor = self._hand_over(room, member)
                room.broadcast_participants()
                self.leaders_changed(room, led, successor)
            room.touch()

    def remove_away(self, room: Room, ticket: ResumeTicket, bar: bool) -> None:
        """Removes someone whose connection dropped: their resume ticket dies, so they
        can only come back through the lobby (or not at all when barred)."""
        room.resume.pop(ticket.member_id, None)
        self.tokens.revoke(ticket.token_id)
        if bar:
            room.barred.add(ticket.name.casefold())
        room.broadcast_participants()

    async def remove(self, room: Room, member: Member, bar: bool) -> None:
        if bar:
            room.barred.add(member.name.casefold())
        self.tokens.revoke(member.token_id)  # a removed participant may not come back
        peer = member.peer
        peer.send(Removed(room.slug, bar))
        if isinstance(peer, Connection):
            await self.leave(peer, dropped=False)
            if peer.group is None:
                peer.close_soon()

    async def end_room(self, room: Room, notify: bool = True) -> None:
        """Everyone is told; the room and everything it held are forgotten."""
        if room.ended:
            return
        self.store.remove(room.slug)
        self.tokens.end(room)
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
