"""Rooms, their members and their settings, held in memory only.

A `Room` knows its participants (admitted), its lobby (waiting entrants), the leader
connections that watch it, its settings and its in-memory chat. `RoomStore` is the one
small interface through which the handlers find rooms, so that a shared store can later
hold the placement for a cluster without touching them. Nothing here is ever written
to disk; `Room.end()` drops everything the room knew.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.protocol import ChatDown, DownMessage
from app.resume import FLAG_E2EE, FLAG_LOBBY, FLAG_LOCKED

CHAT_HISTORY = 200


class Peer(Protocol):
    """What a room needs from a connection: an id and a way to send."""

    id: str

    def send(self, msg: DownMessage) -> None: ...

    def close_soon(self, code: int = 1000) -> None: ...


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(12)[:16]


@dataclass
class Member:
    """A participant or a lobby entrant of one room."""

    id: str
    name: str
    kind: str
    """`browser`, `console` or `phone`."""
    role: str
    """`leader`, `coleader`, `guest` or `phone`."""
    peer: Peer
    since: float = field(default_factory=time.time)
    mic: bool = False
    camera: bool = False
    screen: bool = False
    hand: bool = False
    hand_seq: int | None = None
    """While the hand is up: when it went up, as a number increasing within the room."""
    e2ee: str = "off"
    public_key: str | None = None
    e2ee_auth: str | None = None
    """`auth`, `commit`, `reveal` from the last `e2ee_state`: relayed, never interpreted."""
    e2ee_commit: str | None = None
    e2ee_reveal: str | None = None
    resume: str = ""
    """The resume token last sent to this participant (a secret: never logged)."""
    token_id: str = ""
    """Names this admission in its resume tokens (stable across refreshes)."""
    generation: int = 0
    """Resumes of this admission so far; tokens of older generations are spent."""
    token_sent: float = 0.0
    """When the last token was sent (Unix time), for refreshing."""
    token_state: tuple[str, int] = ("", 0)
    """Role and room switches the last token carried: a change sends a new one."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "mic": self.mic,
            "camera": self.camera,
            "screen": self.screen,
            "hand": self.hand,
            "hand_seq": self.hand_seq,
            "e2ee": self.e2ee,
            "public_key": self.public_key,
            "auth": self.e2ee_auth,
            "commit": self.e2ee_commit,
            "reveal": self.e2ee_reveal,
            "away": False,
        }

    def entrant(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "since": int(self.since)}


@dataclass
class Settings:
    lobby: bool = True
    locked: bool = False
    e2ee: bool = False
    dial_in: bool = False

    def public(self, has_password: bool) -> dict[str, Any]:
        return {
            "lobby": self.lobby,
            "locked": self.locked,
            "has_password": has_password,
            "e2ee": self.e2ee,
            "dial_in": self.dial_in,
        }


@dataclass
class ResumeTicket:
    """A participant whose connection dropped, listed `away` until they come back with
    their resume token, it expires, or a leader removes them."""

    member_id: str
    name: str
    role: str
    kind: str
    expires: float
    """Monotonic time after which they must knock again."""
    token_id: str = ""
    """Their admission's token id (revoked when the listing ends without a return)."""

    def public(self) -> dict[str, Any]:
        """How the dropped participant is listed meanwhile: away, nothing on."""
        return {
            "id": self.member_id,
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "mic": False,
            "camera": False,
            "screen": False,
            "hand": False,
            "hand_seq": None,
            "e2ee": "off",
            "public_key": None,
            "away": True,
        }


class Room:
    """One live meeting."""

    def __init__(self, slug: str, group: str) -> None:
        self.slug = slug
        self.group = group
        """The group that started the room (memory only)."""
        self.id = new_id("r_")
        """Opaque id used towards the SFU (which never learns the slug)."""
        self.instance = new_id("i_")
        """Which start of this room: resume tokens name it, so that a room created anew
        at the same slug admits nobody by an old token. A leader's token that restarts
        the room after a server restart keeps it."""
        self.settings = Settings()
        self.participants: dict[str, Member] = {}
        self.lobby: dict[str, Member] = {}
        self.watchers: dict[str, Peer] = {}
        """Leader connections following the room without being participants."""
        self.barred: set[str] = set()
        self.chat: deque[ChatDown] = deque(maxlen=CHAT_HISTORY)
        self.resume: dict[str, ResumeTicket] = {}
        """Participants away after a drop, by member id."""
        self.watch_token_sent = 0.0
        """When the watching leaders last got a resume token (Unix time)."""
        self.watch_token_flags = -1
        """The switches that token carried: a change sends a new one."""
        self.dial_in_pin: str | None = None
        self.refused = 0
        """Knocks turned away at a gate; leaders see the count, never who."""
        self.hands_raised = 0
        """Hands raised so far: the order in which raised hands are listed."""
        self.invite_url = ""
        """The invitation link leaders hand out (set by the hub when the room starts)."""
        self._password: tuple[bytes, bytes] | None = None
        self.empty_since: float | None = time.monotonic()
        self.ended = False

    # -- password: kept as a salted hash, never sent anywhere

    @property
    def has_password(self) -> bool:
        return self._password is not None

    def set_password(self, password: str | None) -> None:
        if password is None:
            self._password = None
            return
        salt = secrets.token_bytes(16)
        self._password = (salt, hashlib.sha256(salt + password.encode()).digest())

    def check_password(self, password: str | None) -> bool:
        if self._password is None:
            return True
        salt, digest = self._password
        given = hashlib.sha256(salt + (password or "").encode()).digest()
        return hmac.compare_digest(given, digest)

    # -- membership

    def leaders(self) -> list[Peer]:
        """Everyone who gets leader-only messages: watchers and (co-)leader participants."""
        peers: dict[str, Peer] = dict(self.watchers)
        for m in self.participants.values():
            if m.role in ("leader", "coleader"):
                peers[m.peer.id] = m.peer
        return list(peers.values())

    def audience(self) -> list[Peer]:
        """Participants and watchers: who sees the participant list and room chat."""
        peers: dict[str, Peer] = dict(self.watchers)
        for m in self.participants.values():
            peers[m.peer.id] = m.peer
        return list(peers.values())

    def away(self, member_id: str) -> ResumeTicket | None:
        """The resume ticket of a participant whose connection dropped, by member id."""
        return self.resume.get(member_id)

    def leader_present(self) -> bool:
        """Whether anyone leads the room right now: a (co-)leader in it or a watching
        leader (a console)."""
        return bool(self.leaders())

    def flags(self) -> int:
        """The switches a leader's resume token carries, to restart the room with."""
        settings = self.settings
        return (
            (FLAG_LOBBY if settings.lobby else 0)
            | (FLAG_LOCKED if settings.locked else 0)
            | (FLAG_E2EE if settings.e2ee else 0)
        )

    def set_hand(self, member: Member, raised: bool) -> None:
        """Raises or lowers a hand; a hand raised again goes to the end of the order."""
        if raised and not member.hand:
            self.hands_raised += 1
            member.hand_seq = self.hands_raised
        if not raised:
            member.hand_seq = None
        member.hand = raised

    def phones(self) -> list[Member]:
        return [m for m in [*self.participants.values(), *self.lobby.values()] if m.kind == "phone"]

    def is_empty(self) -> bool:
        return not (self.participants or self.lobby or self.watchers)

    def touch(self) -> None:
        self.empty_since = time.monotonic() if self.is_empty() else None

    # -- messages the room sends

    def participants_msg(self) -> DownMessage:
        from app.protocol import Participants

        present = [m.public() for m in self.participants.values()]
        return Participants(self.slug, present + [t.public() for t in self.resume.values()])

    def lobby_msg(self, knock: bool = False) -> DownMessage:
        from app.protocol import LobbyQueue

        entrants = [m.entrant() for m in self.lobby.values()]
        return LobbyQueue(self.slug, knock, entrants, self.refused)

    def state_msg(self, for_leader: bool, numbers: Sequence[str]) -> DownMessage:
        from app.protocol import RoomState

        return RoomState(
            self.slug,
            self.settings.public(self.has_password),
            self.dial_in_pin if for_leader and self.settings.dial_in else None,
            list(numbers) if for_leader and self.settings.dial_in else None,
            self.invite_url if for_leader and self.invite_url else None,
        )

    def send_chat_history(self, peer: Peer) -> None:
        """The room's chat so far (memory only), marked as history, to a newcomer."""
        for line in self.chat:
            peer.send(dataclasses.replace(line, history=True))

    def summary(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "participants": len(self.participants),
            "lobby": len(self.lobby),
            "settings": self.settings.public(self.has_password),
            "invite_url": self.invite_url,
        }

    def broadcast_participants(self) -> None:
        msg = self.participants_msg()
        for peer in self.audience():
            peer.send(msg)

    def broadcast_lobby(self, knock: bool = False) -> None:
        msg = self.lobby_msg(knock)
        for peer in self.leaders():
            peer.send(msg)

    def broadcast_state(self, numbers: Sequence[str]) -> None:
        leaders = {p.id for p in self.leaders()}
        for peer in self.audience():
            peer.send(self.state_msg(peer.id in leaders, numbers))

    def end(self) -> None:
        """Forgets everything the room held."""
        self.ended = True
        self.participants.clear()
        self.lobby.clear()
        self.watchers.clear()
        self.barred.clear()
        self.chat.clear()
        self.resume.clear()
        self._password = None
        self.dial_in_pin = None


class RoomStore(Protocol):
    """Where rooms live. The in-memory store is the only one so far."""

    def get(self, slug: str) -> Room | None: ...
    def add(self, room: Room) -> None: ...
    def remove(self, slug: str) -> None: ...
    def all(self) -> list[Room]: ...
    def by_group(self, group: str) -> list[Room]: ...
    def by_pin(self, pin: str) -> Room | None: ...


class MemoryRoomStore:
    """Rooms in this process's memory."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

    def get(self, slug: str) -> Room | None:
        return self._rooms.get(slug)

    def add(self, room: Room) -> None:
        self._rooms[room.slug] = room

    def remove(self, slug: str) -> None:
        self._rooms.pop(slug, None)

    def all(self) -> list[Room]:
        return list(self._rooms.values())

    def by_group(self, group: str) -> list[Room]:
        return [r for r in self._rooms.values() if r.group == group]

    def by_pin(self, pin: str) -> Room | None:
        """Constant-time over every room: the answer's timing does not reveal PINs."""
        found: Room | None = None
        for room in self._rooms.values():
            stored = room.dial_in_pin if room.settings.dial_in else None
            same = hmac.compare_digest((stored or "\0" * len(pin)).encode(), pin.encode())
            if same and stored is not None:
                found = room
        return found

    def pin_in_use(self, pin: str) -> bool:
        return any(r.dial_in_pin == pin for r in self._rooms.values())


def stats(store: RoomStore) -> dict[str, Any]:
    """Aggregate counts for /metrics: no names, no slugs."""
    kinds = {"browser": 0, "phone": 0, "console": 0}
    mic = camera = screen = lobby = 0
    rooms = store.all()
    for room in rooms:
        lobby += len(room.lobby)
        for m in room.participants.values():
            kinds[m.kind] = kinds.get(m.kind, 0) + 1
            mic += m.mic
            camera += m.camera
            screen += m.screen
    return {
        "rooms": len(rooms),
        "participants": kinds,
        "mic_on": mic,
        "camera_on": camera,
        "screen_on": screen,
        "lobby_waiting": lobby,
    }
