"""Every signalling message, its handler, and who may send it: one table.

Read `ROUTES` top to bottom to know everything a client can ask of the server. Who may
send a message type at all:

- `ANYONE`: any connection after `hello`, also before admission (a lobby entrant, a
  stranger): `hello`, `ping`, `login`, `gateway_auth`, `join`, `dial_in`,
  `dial_in_check` (both for an authenticated gateway only), `leave`,
  `receive` (what media it wants, best said before entering), and `chat` (from the
  lobby it reaches the leaders only).
- `LEADER`: a logged-in leader of a group (also before it joins a room as a participant)
  or an admitted participant (a co-leader); the handler then checks that the connection
  leads *that* room (`app/access.py`).
- `MEMBER`: admitted participants only.

Everything else is refused with `not_admitted` before any handler runs. `hello` must
come first and only once (`app/signalling.py`). The handlers themselves live in
`app/handlers.py` (connection, rooms, entering, chat, WebRTC) and `app/moderation.py`
(leader commands), and know nothing of this table.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from app import handlers as h
from app import moderation as mod
from app.connection import Connection
from app.hub import Hub


class Sender(enum.Enum):
    """Who may send a message type (see the module docstring)."""

    ANYONE = "anyone"
    LEADER = "leader"
    MEMBER = "member"


Handler = Callable[[Hub, Connection, Any], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """One message type's handler and its senders."""

    handler: Handler
    sender: Sender

    def refusal(self, conn: Connection) -> str | None:
        """The error code that refuses `conn`, or None when it may send this."""
        if self.sender is Sender.ANYONE or conn.admitted:
            return None
        if self.sender is Sender.LEADER and conn.group is not None:
            return None
        return "not_admitted"


ANYONE, LEADER, MEMBER = Sender.ANYONE, Sender.LEADER, Sender.MEMBER

ROUTES: Mapping[str, Route] = MappingProxyType(
    {
        # connection
        "hello": Route(h.got_hello, ANYONE),
        "ping": Route(h.got_ping, ANYONE),
        "login": Route(h.got_login, ANYONE),
        "gateway_auth": Route(h.got_gateway_auth, ANYONE),
        # entering and leaving
        "join": Route(h.got_join, ANYONE),
        "dial_in": Route(h.got_dial_in, ANYONE),
        "dial_in_check": Route(h.got_dial_in_check, ANYONE),
        "leave": Route(h.got_leave, ANYONE),
        "chat": Route(h.got_chat, ANYONE),
        "receive": Route(h.got_receive, ANYONE),
        # a leader's rooms
        "list_rooms": Route(h.got_list_rooms, LEADER),
        "check_slug": Route(h.got_check_slug, LEADER),
        "create_room": Route(h.got_create_room, LEADER),
        "watch": Route(h.got_watch, LEADER),
        "unwatch": Route(h.got_unwatch, LEADER),
        # a leader's commands in one room
        "admit": Route(mod.got_admit, LEADER),
        "deny": Route(mod.got_deny, LEADER),
        "admit_all": Route(mod.got_admit_all, LEADER),
        "set_password": Route(mod.got_set_password, LEADER),
        "set_lobby": Route(mod.got_set_lobby, LEADER),
        "set_lock": Route(mod.got_set_lock, LEADER),
        "set_e2ee": Route(mod.got_set_e2ee, LEADER),
        "set_dial_in": Route(mod.got_set_dial_in, LEADER),
        "mute_request": Route(mod.got_mute_request, LEADER),
        "mute_all": Route(mod.got_mute_all, LEADER),
        "lower_hand": Route(mod.got_lower_hand, LEADER),
        "remove": Route(mod.got_remove, LEADER),
        "promote": Route(mod.got_promote, LEADER),
        "end_room": Route(mod.got_end_room, LEADER),
        # in the room
        "hand": Route(h.got_hand, MEMBER),
        "media_state": Route(h.got_media_state, MEMBER),
        "e2ee_state": Route(h.got_e2ee_state, MEMBER),
        "e2ee_key": Route(h.got_e2ee_key, MEMBER),
        "up_offer": Route(h.got_up_offer, MEMBER),
        "down_answer": Route(h.got_down_answer, MEMBER),
        "keyframe": Route(h.got_keyframe, MEMBER),
    }
)
