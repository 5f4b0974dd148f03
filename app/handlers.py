"""Handlers for incoming messages, one per type, named after the message (`got_join`).

Each handler gets the hub, the connection and the validated message dataclass. Which
handler answers which message, and who may send it at all, is one table in
`app/routing.py`; the handlers check the finer rules (which room, which role).
Leader-only room commands live in `app/moderation.py`; the SFU glue the media
handlers call is `app/media.py`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from app import protocol as p
from app.access import admitted_member, leader_room, require_leader
from app.connection import Connection
from app.hub import LEADER_NAME, Hub, Refused
from app.logsetup import log_room_started
from app.media import Media
from app.names import (
    MAX_LOBBY_CHAT,
    NameError_,
    ReservedName,
    clean_chat,
    clean_name,
    slug_problem,
    slug_warning,
    suggest_slug,
)
from app.passwords import verify_password, verify_unknown
from app.rooms import Room
from app.security import address_key
from app.turn import ice_servers as turn_servers

log = logging.getLogger(__name__)

_KDF_SLOTS = asyncio.Semaphore(2)
_CALLER_RE = re.compile(r"^…?[0-9]{0,4}$")


# -- connection


async def got_hello(hub: Hub, conn: Connection, msg: p.Hello) -> None:
    if msg.version != p.VERSION:
        raise Refused("bad_version")
    conn.kind = msg.kind
    conn.lang = msg.lang
    conn.ready = True
    conn.send(
        p.HelloDown(
            ice_servers=ice_servers(hub),
            max_frame_bytes=hub.config.limits.max_frame_bytes,
            help_line=hub.config.rooms.help_line,
        )
    )


def ice_servers(hub: Hub) -> list[dict[str, Any]]:
    return turn_servers(hub.config, time.time())


async def got_ping(hub: Hub, conn: Connection, msg: p.Ping) -> None:
    conn.send(p.Pong())


async def got_login(hub: Hub, conn: Connection, msg: p.Login) -> None:
    if conn.kind == "gateway":
        raise Refused("not_allowed")
    if (msg.password is None) == (msg.ticket is None):
        raise p.ProtocolViolation("bad_message", "password or ticket", "login")
    group = hub.config.groups.get(msg.group)
    tickets = hub.signin_tickets

    async def right_password() -> bool:
        if msg.ticket is not None:  # one HMAC: a leader back after a drop or failover
            hashed = group.password_hash if group is not None else ""
            right = tickets.check(msg.ticket, msg.group, hashed, time.time())
            return right and group is not None
        assert msg.password is not None
        # scrypt takes ~0.1 s and 32 MiB: off the event loop, two at a time. An unknown
        # group costs the same time, so timing does not tell which groups exist.
        async with _KDF_SLOTS:
            if group is None:
                return await asyncio.to_thread(verify_unknown, msg.password)
            return await asyncio.to_thread(verify_password, msg.password, group.password_hash)

    if not await hub.check_secret(conn, "login", right_password):
        raise Refused("bad_credentials")
    conn.group = msg.group
    assert group is not None
    ticket = tickets.issue(msg.group, group.password_hash, time.time())
    conn.send(p.LoginOk(msg.group, ticket))


async def got_gateway_auth(hub: Hub, conn: Connection, msg: p.GatewayAuth) -> None:
    secret = hub.config.gateway.secret
    if conn.kind != "gateway":
        raise Refused("not_allowed")

    def ok() -> bool:
        return bool(secret) and hmac.compare_digest(msg.secret.encode(), secret.encode())

    if not await hub.check_secret(conn, "gateway", ok):
        raise Refused("bad_credentials")
    conn.gateway = True
    conn.send(p.GatewayOk())


# -- rooms (leaders)


async def got_list_rooms(hub: Hub, conn: Connection, msg: p.ListRooms) -> None:
    group = require_leader(conn)
    conn.send(p.RoomList([r.summary() for r in hub.store.by_group(group)]))


def slug_taken(hub: Hub, conn: Connection, slug: str) -> bool:
    """Whether a live room has this slug. A leader must learn that their chosen slug is
    taken, but not use it to map other groups' live rooms: hits on another group's room
    are rate-limited per connection and address."""
    room = hub.store.get(slug)
    if room is None:
        return False
    if room.group != conn.group:
        keys = [("conn", conn.id), ("ip", address_key(conn.address))]
        wait = hub.slug_probes.allow(keys)
        if wait:
            raise Refused("rate_limited", wait)
    return True


async def got_check_slug(hub: Hub, conn: Connection, msg: p.CheckSlug) -> None:
    require_leader(conn)
    reason = slug_problem(msg.slug)
    if reason is None and slug_taken(hub, conn, msg.slug):
        reason = "room_exists"
    warning = slug_warning(msg.slug) if reason is None else None
    suggestion = suggest_slug() if reason or warning else None
    conn.send(p.SlugCheck(msg.slug, reason is None, reason, warning, suggestion))


async def got_create_room(hub: Hub, conn: Connection, msg: p.CreateRoom) -> None:
    group = require_leader(conn)
    problem = slug_problem(msg.slug)
    if problem:
        raise Refused(problem)
    if slug_taken(hub, conn, msg.slug):
        raise Refused("room_exists")
    if len(hub.store.all()) >= hub.config.rooms.max_rooms:
        raise Refused("internal")
    room = Room(msg.slug, group)
    room.invite_url = hub.room_url(msg.slug, group)
    room.settings.lobby = msg.lobby
    room.set_password(msg.password)
    if msg.dial_in:
        room.settings.dial_in = True
        room.dial_in_pin = hub.new_pin()
    hub.store.add(room)
    log_room_started(group)
    warning = slug_warning(msg.slug)
    conn.send(
        p.RoomCreated(
            msg.slug,
            room.invite_url,
            warning,
            suggest_slug() if warning else None,
        )
    )
    watch(hub, conn, room)
    await hub.room_started(room)


def watch(hub: Hub, conn: Connection, room: Room) -> None:
    led = room.leader_present()
    room.watchers[conn.id] = conn
    conn.watching.add(room.slug)
    room.touch()
    conn.send(room.state_msg(True, hub.config.gateway.numbers))
    conn.send(room.lobby_msg())
    conn.send(room.participants_msg())
    room.send_chat_history(conn)
    hub.tokens.send_watch_token(room, conn, time.time())
    hub.leaders_changed(room, led)


async def got_watch(hub: Hub, conn: Connection, msg: p.Watch) -> None:
    require_leader(conn)
    room = hub.store.get(msg.room)
    if room is None and msg.resume is not None and not slug_problem(msg.room):
        # After a server restart the console brings its room back with its token.
        room = await hub.restart_watched(conn, msg.room, msg.resume)
    if room is None or room.group != conn.group:
        raise Refused("no_such_room")  # another group's room is none of theirs
    watch(hub, conn, room)


async def got_unwatch(hub: Hub, conn: Connection, msg: p.Unwatch) -> None:
    room = hub.store.get(msg.room)
    conn.watching.discard(msg.room)
    if room is not None:
        led = room.leader_present()
        room.watchers.pop(conn.id, None)
        room.touch()
        hub.leaders_changed(room, led)


# -- entering and leaving


def display_name(conn: Connection, raw: str) -> str:
    if not raw.strip() and conn.group is not None:
        return LEADER_NAME
    try:
        return clean_name(raw)
    except ReservedName as reserved:
        if conn.group is not None:  # a logged-in leader may use the leader's label
            return str(reserved)
        raise Refused("reserved_name") from None
    except NameError_:
        raise Refused("bad_name") from None


async def got_join(hub: Hub, conn: Connection, msg: p.Join) -> None:
    if conn.gateway or conn.kind == "gateway":
        raise Refused("not_allowed")
    if conn.member is not None or conn.waiting is not None:
        raise Refused("already_joined")
    if conn.kind == "console" and conn.group is None:
        raise Refused("console_not_leader")
    if slug_problem(msg.room):
        raise Refused("bad_slug")
    name = display_name(conn, msg.name)
    await hub.join(conn, msg.room, name, msg.password, msg.resume, msg.invite)


async def got_dial_in(hub: Hub, conn: Connection, msg: p.DialIn) -> None:
    if not conn.gateway:
        raise Refused("not_allowed")
    if conn.member is not None:
        raise Refused("already_joined")
    found: list[Room] = []

    def ok() -> bool:
        room = hub.store.by_pin(msg.pin) if msg.pin.isdigit() else None
        if room is not None:
            found.append(room)
        return room is not None

    if msg.caller_key is None:
        if not await hub.check_secret(conn, "pin", ok):
            raise Refused("bad_pin")
    else:
        check_caller_pin(hub, conn, msg, ok)
    caller = msg.caller if _CALLER_RE.match(msg.caller) else ""
    if msg.withheld and not hub.config.gateway.hide_numbers:
        name = "Telefon (unterdrückt)" if conn.lang == "de" else "Telefon (withheld)"
    elif hub.config.gateway.hide_numbers or not caller.strip("…"):
        name = "Telefon"
    else:
        name = f"Telefon {caller if caller.startswith('…') else '…' + caller}"
    await hub.enter(conn, found[0], name, None, kind="phone")


def check_caller_pin(hub: Hub, conn: Connection, msg: p.DialIn, ok: Callable[[], bool]) -> None:
    """One PIN attempt of a phone caller, the lockout in one place for every gateway
    process and machine: counted per call (the connection), per caller (a keyed hash of
    its number: `[gateway] caller_tries`), per source (a trunk: 10x) and per dialled
    number (30x); the gateway's own address is not a key, since it carries everybody.
    The attempt that locks the caller is answered `rate_limited`, not `bad_pin`, so the
    gateway can say so at once."""
    keys, thresholds = caller_pin_keys(hub, conn, msg)
    stamp = hub.limiter.begin(keys, thresholds=thresholds)
    if stamp is None:
        raise Refused("rate_limited", hub.limiter.retry_after(keys))
    if ok():
        hub.limiter.succeeded(keys, stamp)
        return
    wait = hub.limiter.retry_after(keys)
    raise Refused("rate_limited", wait) if wait else Refused("bad_pin")


def caller_pin_keys(
    hub: Hub, conn: Connection, msg: p.DialIn | p.DialInCheck
) -> tuple[list[tuple[str, str]], dict[tuple[str, str], int]]:
    """A phone caller's limiter keys and the failures that lock each."""
    tries = hub.config.gateway.caller_tries
    keys = [("conn", f"pin:{conn.id}"), ("caller", f"pin:{msg.caller_key}")]
    thresholds = {keys[0]: tries, keys[1]: tries}
    for kind, value, factor in (("source", msg.source_key, 10), ("dialled", msg.dialled_key, 30)):
        if value:
            keys.append((kind, f"pin:{value}"))
            thresholds[keys[-1]] = tries * factor
    return keys, thresholds


async def got_dial_in_check(hub: Hub, conn: Connection, msg: p.DialInCheck) -> None:
    if not conn.gateway:
        raise Refused("not_allowed")
    keys, _ = caller_pin_keys(hub, conn, msg)
    wait = hub.limiter.retry_after(keys)
    if wait:
        raise Refused("rate_limited", wait)
    conn.send(p.DialInOpen())


async def got_leave(hub: Hub, conn: Connection, msg: p.Leave) -> None:
    await hub.leave(conn, dropped=False)


# -- in the room


async def got_chat(hub: Hub, conn: Connection, msg: p.ChatUp) -> None:
    text = clean_chat(msg.text)
    if text is None:
        raise Refused("bad_message")
    now = int(time.time())
    if msg.room is not None and conn.group is not None and not conn.admitted:
        # A leader watching the room: room chat, or a message to one lobby entrant.
        send_as_leader(leader_room(hub, conn, msg.room), conn, LEADER_NAME, text, msg.to, now)
        return
    room, member = conn.room, conn.member
    if room is None or member is None:
        raise Refused("not_admitted")
    if member.id in room.lobby:
        # Lobby chat goes to every leader's screen: short lines, a few per minute.
        if len(text) > MAX_LOBBY_CHAT:
            raise Refused("bad_message")
        keys = [("conn", member.id), ("ip", address_key(conn.address))]
        wait = hub.lobby_chat.allow(keys) if not conn.gateway else 0
        if wait:
            raise Refused("rate_limited", wait)
        line = p.ChatDown(room.slug, text, member.name, now, None, False, True, member.id)
        for peer in room.leaders():
            peer.send(line)
        return
    if msg.to is not None and msg.to in room.lobby:
        if not hub.is_leader_of(conn, room):
            raise Refused("not_allowed")
        send_as_leader(room, conn, member.name, text, msg.to, now)
        return
    line = p.ChatDown(room.slug, text, member.name, now, msg.to, False, False, member.id)
    if msg.to is None:
        room.chat.append(line)
        for peer in room.audience():
            peer.send(line)
        return
    target = room.participants.get(msg.to)
    if target is None:
        raise Refused("no_such_participant")
    target.peer.send(line)
    conn.send(line)


def send_as_leader(
    room: Room, conn: Connection, name: str, text: str, to: str | None, now: int
) -> None:
    if to is None:
        line = p.ChatDown(room.slug, text, name, now, None, False, False, conn.id)
        room.chat.append(line)
        for peer in room.audience():
            peer.send(line)
        return
    entrant = room.lobby.get(to)
    if entrant is None:
        raise Refused("no_such_participant")
    line = p.ChatDown(room.slug, text, name, now, to, False, True, conn.id)
    entrant.peer.send(line)
    for peer in room.leaders():
        peer.send(line)


async def got_hand(hub: Hub, conn: Connection, msg: p.Hand) -> None:
    room, member = admitted_member(conn)
    room.set_hand(member, msg.raised)
    room.broadcast_participants()


async def got_media_state(hub: Hub, conn: Connection, msg: p.MediaState) -> None:
    room, member = admitted_member(conn)
    member.mic, member.camera, member.screen = msg.mic, msg.camera, msg.screen
    if hub.media is not None:
        hub.media.media_state(room, member)
    room.broadcast_participants()


async def got_e2ee_state(hub: Hub, conn: Connection, msg: p.E2eeState) -> None:
    room, member = admitted_member(conn)
    member.e2ee = msg.state
    member.public_key = msg.public_key
    member.e2ee_auth, member.e2ee_commit, member.e2ee_reveal = msg.auth, msg.commit, msg.reveal
    room.broadcast_participants()


async def got_e2ee_key(hub: Hub, conn: Connection, msg: p.E2eeKeyUp) -> None:
    room, member = admitted_member(conn)
    target = room.participants.get(msg.to)
    if target is None:
        raise Refused("no_such_participant")
    target.peer.send(p.E2eeKeyDown(msg.payload, member.id))


# -- media (WebRTC): the SFU answers, the room decides who may publish and subscribe


def media_of(hub: Hub) -> Media:
    """The server's SFU glue, or `internal` when media is not available."""
    if hub.media is None:
        raise Refused("internal")
    return hub.media


async def got_up_offer(hub: Hub, conn: Connection, msg: p.UpOffer) -> None:
    from sfu import TrackInfo
    from sfu.errors import BadSdp

    room, member = admitted_member(conn)
    media = media_of(hub)
    tracks = [TrackInfo(t.mid, t.kind, t.source) for t in msg.tracks]
    try:
        answer = await media.router.got_up_offer(room.id, member.id, msg.sdp, tracks)
    except BadSdp:
        raise Refused("bad_sdp") from None
    conn.send(p.UpAnswer(answer))


async def got_down_answer(hub: Hub, conn: Connection, msg: p.DownAnswer) -> None:
    from sfu.errors import BadSdp

    room, member = admitted_member(conn)
    try:
        await media_of(hub).router.got_down_answer(room.id, member.id, msg.sdp)
    except BadSdp:
        raise Refused("bad_sdp") from None


async def got_receive(hub: Hub, conn: Connection, msg: p.Receive) -> None:
    conn.receive = frozenset(msg.kinds)
    conn.fewer_frames = msg.fewer_frames
    if conn.member is not None and conn.room is not None and hub.media is not None:
        hub.media.receive(conn.room, conn.member, conn.receive, conn.fewer_frames)


async def got_keyframe(hub: Hub, conn: Connection, msg: p.Keyframe) -> None:
    room, _member = admitted_member(conn)
    if msg.participant not in room.participants:
        raise Refused("no_such_participant")
    media_of(hub).router.request_keyframe(room.id, msg.participant)
