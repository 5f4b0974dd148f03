"""Who may act on which room: the checks the handlers share.

`app/routing.py` says who may send a message type at all (anyone, a leader, an admitted
participant); these functions answer the finer question for one room, with answers that
never tell a stranger whether a slug is live.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.hub import Hub, Refused

if TYPE_CHECKING:
    from app.connection import Connection
    from app.rooms import Member, Room


def require_leader(conn: Connection) -> str:
    """The group a logged-in leader leads."""
    if conn.group is None:
        raise Refused("not_allowed")
    return conn.group


def leader_room(hub: Hub, conn: Connection, slug: str) -> Room:
    """The room, if this connection may lead it. Everyone else gets an answer that
    does not depend on whether the slug is live: `not_admitted` before admission,
    `not_allowed` for participants, `no_such_room` for other groups' leaders."""
    room = hub.store.get(slug)
    if room is not None and hub.is_leader_of(conn, room):
        return room
    if conn.group is None and not conn.admitted:
        raise Refused("not_admitted")
    raise Refused("no_such_room" if conn.group is not None else "not_allowed")


def admitted_member(conn: Connection) -> tuple[Room, Member]:
    """The room and member of an admitted participant."""
    if not conn.admitted or conn.room is None or conn.member is None:
        raise Refused("not_admitted")
    return conn.room, conn.member
