"""Leader-only room commands: admit, deny, password, lobby, lock, E2EE, dial-in, mute
(ask or mute, one or everyone), lower a hand, remove, promote, end.

Every handler first asks `leader_room()` (`app/access.py`), which refuses anyone who
is not a leader of the room's group or a co-leader of that room. The room password is
stored only as a salted hash and never sent to anyone.
"""

from __future__ import annotations

from app import protocol as p
from app.access import leader_room
from app.connection import Connection
from app.hub import Hub, Refused
from app.rooms import Member, Room


def lobby_entrant(room: Room, member_id: str) -> Member:
    member = room.lobby.get(member_id)
    if member is None:
        raise Refused("no_such_participant")
    return member


def participant(room: Room, member_id: str) -> Member:
    member = room.participants.get(member_id)
    if member is None:
        raise Refused("no_such_participant")
    return member


def settings_changed(hub: Hub, room: Room) -> None:
    room.broadcast_state(hub.config.gateway.numbers)


def room_has_space(hub: Hub, room: Room) -> None:
    if len(room.participants) >= hub.config.rooms.max_participants:
        raise Refused("room_full")


async def got_admit(hub: Hub, conn: Connection, msg: p.Admit) -> None:
    room = leader_room(hub, conn, msg.room)
    entrant = lobby_entrant(room, msg.id)
    room_has_space(hub, room)
    hub.admit(room, entrant)


async def got_deny(hub: Hub, conn: Connection, msg: p.Deny) -> None:
    room = leader_room(hub, conn, msg.room)
    hub.deny(room, lobby_entrant(room, msg.id))


async def got_admit_all(hub: Hub, conn: Connection, msg: p.AdmitAll) -> None:
    room = leader_room(hub, conn, msg.room)
    for member in list(room.lobby.values()):
        room_has_space(hub, room)
        hub.admit(room, member)


async def got_set_password(hub: Hub, conn: Connection, msg: p.SetPassword) -> None:
    room = leader_room(hub, conn, msg.room)
    room.set_password(msg.password)
    settings_changed(hub, room)


async def got_set_lobby(hub: Hub, conn: Connection, msg: p.SetLobby) -> None:
    room = leader_room(hub, conn, msg.room)
    room.settings.lobby = msg.on
    settings_changed(hub, room)


async def got_set_lock(hub: Hub, conn: Connection, msg: p.SetLock) -> None:
    room = leader_room(hub, conn, msg.room)
    room.settings.locked = msg.locked
    settings_changed(hub, room)


async def got_set_e2ee(hub: Hub, conn: Connection, msg: p.SetE2ee) -> None:
    """Phone callers cannot be end-to-end encrypted: switching on with callers present
    needs the leader's explicit `drop_phones`, and dial-in goes off."""
    room = leader_room(hub, conn, msg.room)
    if msg.on:
        phones = room.phones()
        if phones and not msg.drop_phones:
            raise Refused("phones_present")
        for member in phones:
            if member.id in room.lobby:
                hub.deny(room, member, "ended")
            else:
                await hub.remove(room, member, bar=False)
        room.settings.dial_in = False
        room.dial_in_pin = None
        # Console audio is clear too: it leaves the room's media (the console says why).
        for member in [m for m in room.participants.values() if m.kind == "console"]:
            if isinstance(member.peer, Connection):
                member.peer.error("e2ee_console_audio", "set_e2ee")
            await hub.remove(room, member, bar=False)
    room.settings.e2ee = msg.on
    settings_changed(hub, room)


async def got_set_dial_in(hub: Hub, conn: Connection, msg: p.SetDialIn) -> None:
    room = leader_room(hub, conn, msg.room)
    if msg.on and room.settings.e2ee:
        raise Refused("e2ee_on")
    room.settings.dial_in = msg.on
    if msg.on and room.dial_in_pin is None:
        room.dial_in_pin = hub.new_pin()
    if not msg.on:
        room.dial_in_pin = None
    settings_changed(hub, room)


async def got_mute_request(hub: Hub, conn: Connection, msg: p.MuteRequest) -> None:
    """`ask`: the person is asked and decides; otherwise their client mutes."""
    room = leader_room(hub, conn, msg.room)
    target = participant(room, msg.id)
    target.peer.send(p.MuteRequestDown(room.slug, conn.id, msg.ask))


async def got_mute_all(hub: Hub, conn: Connection, msg: p.MuteAll) -> None:
    room = leader_room(hub, conn, msg.room)
    for member in list(room.participants.values()):
        if member.peer is not conn and member.mic:
            member.peer.send(p.MuteRequestDown(room.slug, conn.id))


async def got_lower_hand(hub: Hub, conn: Connection, msg: p.LowerHand) -> None:
    room = leader_room(hub, conn, msg.room)
    room.set_hand(participant(room, msg.id), False)
    room.broadcast_participants()


async def got_remove(hub: Hub, conn: Connection, msg: p.Remove) -> None:
    room = leader_room(hub, conn, msg.room)
    away = room.away(msg.id)
    if away is not None:  # dropped, may come back: removing kills their resume ticket
        if away.role == "leader" and conn.group != room.group:
            raise Refused("not_allowed")
        hub.remove_away(room, away, msg.bar)
        return
    target = participant(room, msg.id)
    if target.role == "leader" and conn.group != room.group:
        raise Refused("not_allowed")
    await hub.remove(room, target, msg.bar)


async def got_promote(hub: Hub, conn: Connection, msg: p.Promote) -> None:
    room = leader_room(hub, conn, msg.room)
    target = participant(room, msg.id)
    if target.role == "phone":
        raise Refused("not_allowed")
    if target.role == "guest":
        target.role = "coleader"
        target.peer.send(room.lobby_msg())
        target.peer.send(room.state_msg(True, hub.config.gateway.numbers))
    room.broadcast_participants()


async def got_end_room(hub: Hub, conn: Connection, msg: p.EndRoom) -> None:
    room = leader_room(hub, conn, msg.room)
    await hub.end_room(room)
