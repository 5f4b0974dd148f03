"""Kreis signalling protocol: one dataclass per message type, and strict parsing.

This module is shared by the server, the console, the gateway and tests; it imports
nothing from the server. docs/protocol.md describes every message in prose.

Up messages (client → server) are validated strictly: unknown fields, wrong types,
over-long strings and unknown types raise `ProtocolViolation` with a stable code.
Down messages (server → client) are parsed leniently so that old clients survive new
optional fields.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

VERSION = 1
MAX_DEPTH = 8

ClientKind = Literal["browser", "console", "gateway"]
Source = Literal["mic", "camera", "screen"]


class ProtocolViolation(Exception):
    """A message broke the protocol; `code` is one of the error codes in docs/protocol.md."""

    def __init__(self, code: str, detail: str = "", ref: str | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail
        self.ref = ref


def _lim(max_len: int, min_len: int = 0) -> dict[str, int]:
    return {"max": max_len, "min": min_len}


# --------------------------------------------------------------------------- up


@dataclass
class UpMessage:
    """Base of client → server messages."""

    type: ClassVar[str] = ""


@dataclass
class Hello(UpMessage):
    """First message of every connection."""

    type: ClassVar[str] = "hello"
    version: int
    """Protocol version; must be 1."""
    kind: ClientKind = "browser"
    """What the client is."""
    lang: Literal["de", "en"] = "en"
    """Language of error messages."""


@dataclass
class Ping(UpMessage):
    type: ClassVar[str] = "ping"


@dataclass
class Login(UpMessage):
    """A leader logs in with the group id and the group password, or with the ticket
    from its last `login_ok` (app/signin_ticket.py): one of the two."""

    type: ClassVar[str] = "login"
    group: str = field(metadata=_lim(32, 1))
    password: str | None = field(default=None, metadata=_lim(256, 1))
    ticket: str | None = field(default=None, metadata=_lim(64, 1))


@dataclass
class GatewayAuth(UpMessage):
    """The dial-in gateway authenticates with the shared secret."""

    type: ClassVar[str] = "gateway_auth"
    secret: str = field(metadata=_lim(256, 1))


@dataclass
class ListRooms(UpMessage):
    type: ClassVar[str] = "list_rooms"


@dataclass
class CheckSlug(UpMessage):
    type: ClassVar[str] = "check_slug"
    slug: str = field(metadata=_lim(128))


@dataclass
class CreateRoom(UpMessage):
    """Creates and starts a room (leaders only)."""

    type: ClassVar[str] = "create_room"
    slug: str = field(metadata=_lim(128))
    lobby: bool = True
    password: str | None = field(default=None, metadata=_lim(128, 4))
    dial_in: bool = False


@dataclass
class Watch(UpMessage):
    type: ClassVar[str] = "watch"
    room: str = field(metadata=_lim(128))
    resume: str | None = field(default=None, metadata=_lim(512))
    """A watching leader's resume token: starts the room again after a server restart."""


@dataclass
class Unwatch(UpMessage):
    type: ClassVar[str] = "unwatch"
    room: str = field(metadata=_lim(128))


@dataclass
class RoomCommand(UpMessage):
    """Base of the leader-only room commands; all name the room."""

    room: str = field(metadata=_lim(128))


@dataclass
class Admit(RoomCommand):
    type: ClassVar[str] = "admit"
    id: str = field(default="", metadata=_lim(64, 1))


@dataclass
class Deny(RoomCommand):
    type: ClassVar[str] = "deny"
    id: str = field(default="", metadata=_lim(64, 1))


@dataclass
class AdmitAll(RoomCommand):
    type: ClassVar[str] = "admit_all"


@dataclass
class SetPassword(RoomCommand):
    type: ClassVar[str] = "set_password"
    password: str | None = field(default=None, metadata=_lim(128, 4))


@dataclass
class SetLobby(RoomCommand):
    type: ClassVar[str] = "set_lobby"
    on: bool = True


@dataclass
class SetLock(RoomCommand):
    type: ClassVar[str] = "set_lock"
    locked: bool = True


@dataclass
class SetE2ee(RoomCommand):
    type: ClassVar[str] = "set_e2ee"
    on: bool = True
    drop_phones: bool = False


@dataclass
class SetDialIn(RoomCommand):
    type: ClassVar[str] = "set_dial_in"
    on: bool = True


@dataclass
class MuteRequest(RoomCommand):
    type: ClassVar[str] = "mute_request"
    id: str = field(default="", metadata=_lim(64, 1))
    ask: bool = False
    """True: ask the person, who decides; false: the leader mutes them."""


@dataclass
class MuteAll(RoomCommand):
    """Mutes every participant but the sender (each can switch on again)."""

    type: ClassVar[str] = "mute_all"


@dataclass
class LowerHand(RoomCommand):
    """A leader lowers a participant's raised hand."""

    type: ClassVar[str] = "lower_hand"
    id: str = field(default="", metadata=_lim(64, 1))


@dataclass
class Remove(RoomCommand):
    type: ClassVar[str] = "remove"
    id: str = field(default="", metadata=_lim(64, 1))
    bar: bool = False


@dataclass
class Promote(RoomCommand):
    type: ClassVar[str] = "promote"
    id: str = field(default="", metadata=_lim(64, 1))


@dataclass
class EndRoom(RoomCommand):
    type: ClassVar[str] = "end_room"


@dataclass
class Join(UpMessage):
    """Enter a room; a knock when the lobby is on."""

    type: ClassVar[str] = "join"
    room: str = field(metadata=_lim(128))
    name: str = field(default="", metadata=_lim(200))
    password: str | None = field(default=None, metadata=_lim(128))
    resume: str | None = field(default=None, metadata=_lim(512))
    """A resume token from `joined`/`resume_token`: back in without the lobby."""
    invite: str | None = field(default=None, metadata=_lim(64))
    """The `k` code of the room's invitation link, when the guest has it."""


@dataclass
class DialIn(UpMessage):
    """The gateway brings a phone caller to the room with this PIN (through the lobby)."""

    type: ClassVar[str] = "dial_in"
    pin: str = field(metadata=_lim(16, 1))
    caller: str = field(default="", metadata=_lim(16))
    caller_key: str | None = field(default=None, metadata=_lim(64, 16))
    """Keyed hash of the caller's number (withheld: of source, trunk and call
    fingerprint): wrong PINs count against it on every gateway process and machine."""
    source_key: str | None = field(default=None, metadata=_lim(64, 16))
    """Keyed hash of the address the call came from (a trunk carries many callers)."""
    dialled_key: str | None = field(default=None, metadata=_lim(64, 16))
    """Keyed hash of the number that was dialled."""
    withheld: bool = False
    """The caller withheld its number."""


@dataclass
class DialInCheck(UpMessage):
    """Before a call is answered: may this caller try a PIN at all? (`dial_in_open`,
    or `error/rate_limited` for a locked caller, who then never gets a 200.)"""

    type: ClassVar[str] = "dial_in_check"
    caller_key: str = field(metadata=_lim(64, 16))
    source_key: str | None = field(default=None, metadata=_lim(64, 16))
    dialled_key: str | None = field(default=None, metadata=_lim(64, 16))


@dataclass
class Leave(UpMessage):
    type: ClassVar[str] = "leave"


@dataclass
class ChatUp(UpMessage):
    type: ClassVar[str] = "chat"
    text: str = field(metadata=_lim(2000, 1))
    to: str | None = field(default=None, metadata=_lim(64))
    room: str | None = field(default=None, metadata=_lim(128))


@dataclass
class Hand(UpMessage):
    type: ClassVar[str] = "hand"
    raised: bool


@dataclass
class MediaState(UpMessage):
    type: ClassVar[str] = "media_state"
    mic: bool = False
    camera: bool = False
    screen: bool = False


@dataclass
class TrackDesc:
    """One track in an `up_offer`."""

    mid: str = field(metadata=_lim(32, 1))
    kind: Literal["audio", "video"]
    source: Source


@dataclass
class UpOffer(UpMessage):
    type: ClassVar[str] = "up_offer"
    sdp: str = field(metadata=_lim(60000, 1))
    tracks: list[TrackDesc] = field(default_factory=list, metadata={"max": 8})


@dataclass
class DownAnswer(UpMessage):
    type: ClassVar[str] = "down_answer"
    sdp: str = field(metadata=_lim(60000, 1))


@dataclass
class Receive(UpMessage):
    """What this participant wants the SFU to send it: `audio` (microphones), `video`
    (cameras), `screen` (screen shares). Before `join`/`dial_in` it holds from the
    first down offer on (a phone or the console's audio never sees a video m-line);
    later it changes what is forwarded (a browser on a weak link drops video).
    `fewer_frames`: cameras that come in temporal layers reach this participant at
    about a quarter of their frame rate (saves data on a weak or metered link)."""

    type: ClassVar[str] = "receive"
    kinds: list[Literal["audio", "video", "screen"]] = field(metadata={"max": 3})
    fewer_frames: bool = False


@dataclass
class Keyframe(UpMessage):
    type: ClassVar[str] = "keyframe"
    participant: str = field(metadata=_lim(64, 1))


@dataclass
class E2eeState(UpMessage):
    type: ClassVar[str] = "e2ee_state"
    state: Literal["on", "off", "unable"]
    public_key: str | None = field(default=None, metadata=_lim(256))
    auth: str | None = field(default=None, metadata=_lim(128))
    """The client's MAC of its own entry under the room secret; opaque to the server."""
    commit: str | None = field(default=None, metadata=_lim(128))
    """Safety-number commitment; opaque to the server."""
    reveal: str | None = field(default=None, metadata=_lim(128))
    """Safety-number nonce, revealed after everyone committed; opaque to the server."""


@dataclass
class E2eeKeyUp(UpMessage):
    type: ClassVar[str] = "e2ee_key"
    to: str = field(metadata=_lim(64, 1))
    payload: str = field(metadata=_lim(4096, 1))


UP_TYPES: dict[str, type[UpMessage]] = {
    cls.type: cls
    for cls in (
        Hello, Ping, Login, GatewayAuth, ListRooms, CheckSlug, CreateRoom, Watch, Unwatch,
        Admit, Deny, AdmitAll, SetPassword, SetLobby, SetLock, SetE2ee, SetDialIn,
        MuteRequest, Remove, Promote, EndRoom, Join, DialIn, Leave, ChatUp, Hand,
        MediaState, UpOffer, DownAnswer, Keyframe, E2eeState, E2eeKeyUp, MuteAll, LowerHand,
        Receive, DialInCheck,
    )
}  # fmt: skip


# ------------------------------------------------------------------------- parsing


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON value, stopping early past `limit`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        if d > limit:
            return d
        if isinstance(item, dict):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, d)
            stack.extend((v, d + 1) for v in item)
    return deepest


def decode_frame(text: str) -> dict[str, Any]:
    """Parses one WebSocket text frame into a JSON object (checks shape, not fields)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolViolation("bad_json", "not valid JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolViolation("bad_json", "a message must be a JSON object")
    if depth(data) > MAX_DEPTH:
        raise ProtocolViolation("too_deep", f"nesting deeper than {MAX_DEPTH}")
    return data


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _check_value(name: str, value: Any, hint: Any, meta: Any, ref: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(name, value, inner[0], meta, ref)
    if origin is Literal:
        if value not in typing.get_args(hint):
            allowed = ", ".join(str(a) for a in typing.get_args(hint))
            raise ProtocolViolation("bad_message", f"{name}: must be one of {allowed}", ref)
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolViolation("bad_message", f"{name}: must be a list", ref)
        if len(value) > meta.get("max", 64):
            raise ProtocolViolation("bad_message", f"{name}: too many entries", ref)
        (item_type,) = typing.get_args(hint)
        return [_check_value(f"{name}[]", v, item_type, {}, ref) for v in value]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ProtocolViolation("bad_message", f"{name}: must be an object", ref)
        return _build(hint, value, ref)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise ProtocolViolation("bad_message", f"{name}: must be true or false", ref)
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolViolation("bad_message", f"{name}: must be an integer", ref)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ProtocolViolation("bad_message", f"{name}: must be a string", ref)
        if len(value) > meta.get("max", 256):
            raise ProtocolViolation("bad_message", f"{name}: too long", ref)
        if len(value) < meta.get("min", 0):
            raise ProtocolViolation("bad_message", f"{name}: too short", ref)
        return value
    raise ProtocolViolation("bad_message", f"{name}: unsupported", ref)  # pragma: no cover


def _build(cls: type[Any], data: dict[str, Any], ref: str) -> Any:
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "type":
            continue
        f = known.get(key)
        if f is None:
            raise ProtocolViolation("bad_message", f"unknown field: {key[:32]}", ref)
        kwargs[key] = _check_value(key, value, hints[key], f.metadata, ref)
    for name, f in known.items():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in kwargs and missing:
            raise ProtocolViolation("bad_message", f"missing field: {name}", ref)
    return cls(**kwargs)


def parse_up(data: dict[str, Any]) -> UpMessage:
    """Validates a decoded up message and returns its dataclass."""
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolViolation("bad_message", "missing field: type")
    cls = UP_TYPES.get(kind)
    if cls is None:
        raise ProtocolViolation("unknown_type", f"unknown type: {kind[:32]}")
    msg: UpMessage = _build(cls, data, kind)
    return msg


def encode(msg: UpMessage | DownMessage) -> dict[str, Any]:
    """A message as a JSON-ready dict, with its `type`."""
    out: dict[str, Any] = {"type": msg.type}
    out.update(dataclasses.asdict(msg))
    return out


# ------------------------------------------------------------------------- down


@dataclass
class DownMessage:
    """Base of server → client messages."""

    type: ClassVar[str] = ""


@dataclass
class HelloDown(DownMessage):
    type: ClassVar[str] = "hello"
    version: int = VERSION
    server: str = "kreis"
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    max_frame_bytes: int = 65536
    help_line: str = ""
    """`[rooms] help_line`: shown on the pages that end a visit (empty: none)."""


@dataclass
class Pong(DownMessage):
    type: ClassVar[str] = "pong"


@dataclass
class Error(DownMessage):
    type: ClassVar[str] = "error"
    code: str = "internal"
    message: str = ""
    ref: str | None = None
    retry_after: int | None = None


@dataclass
class LoginOk(DownMessage):
    type: ClassVar[str] = "login_ok"
    group: str = ""
    ticket: str = ""
    """Signs in to the group again instead of the password (memory only, a secret)."""


@dataclass
class GatewayOk(DownMessage):
    type: ClassVar[str] = "gateway_ok"


@dataclass
class DialInOpen(DownMessage):
    """The answer to `dial_in_check`: none of the caller's keys is locked."""

    type: ClassVar[str] = "dial_in_open"


@dataclass
class RoomList(DownMessage):
    type: ClassVar[str] = "room_list"
    rooms: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SlugCheck(DownMessage):
    type: ClassVar[str] = "slug_check"
    slug: str = ""
    ok: bool = True
    reason: str | None = None
    warning: str | None = None
    suggestion: str | None = None


@dataclass
class RoomCreated(DownMessage):
    type: ClassVar[str] = "room_created"
    slug: str = ""
    url: str = ""
    warning: str | None = None
    suggestion: str | None = None


@dataclass
class WaitingForLeader(DownMessage):
    type: ClassVar[str] = "waiting_for_leader"
    room: str = ""


@dataclass
class LobbyStatus(DownMessage):
    type: ClassVar[str] = "lobby_status"
    state: str = "waiting"
    message: str | None = None
    leader_present: bool = True
    """False while no leader is in the room or watching it (said honestly in the lobby)."""


@dataclass
class Joined(DownMessage):
    type: ClassVar[str] = "joined"
    id: str = ""
    role: str = "guest"
    room: str = ""
    resume: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Participants(DownMessage):
    type: ClassVar[str] = "participants"
    room: str = ""
    participants: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LobbyQueue(DownMessage):
    type: ClassVar[str] = "lobby_queue"
    room: str = ""
    knock: bool = False
    entrants: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    """Knocks on this live room that were turned away (locked, full, password, bar)."""


@dataclass
class RoomState(DownMessage):
    type: ClassVar[str] = "room_state"
    room: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    dial_in_pin: str | None = None
    dial_in_numbers: list[str] | None = None
    invite_url: str | None = None
    """Leaders only: the room's invitation link (with its `?k=` code)."""


@dataclass
class ChatDown(DownMessage):
    type: ClassVar[str] = "chat"
    room: str = ""
    text: str = ""
    name: str = ""
    ts: int = 0
    to: str | None = None
    history: bool = False
    lobby: bool = False
    # `from` is a Python keyword; encode() renames it.
    from_: str = ""


@dataclass
class MuteRequestDown(DownMessage):
    type: ClassVar[str] = "mute_request"
    room: str = ""
    by: str = ""
    ask: bool = False
    """True: a request the person may decline; false: mute now."""


@dataclass
class Removed(DownMessage):
    type: ClassVar[str] = "removed"
    room: str = ""
    barred: bool = False


@dataclass
class ResumeToken(DownMessage):
    """A fresh resume token (refreshed while in the room; the old one stays valid)."""

    type: ClassVar[str] = "resume_token"
    room: str = ""
    token: str = ""


@dataclass
class LeaderState(DownMessage):
    """To everyone in the room when the last leader leaves or a leader is back."""

    type: ClassVar[str] = "leader_state"
    room: str = ""
    present: bool = True
    successor: str | None = None
    """The id of the co-leader who now leads the room, when one took over."""


@dataclass
class RoomEnded(DownMessage):
    type: ClassVar[str] = "room_ended"
    room: str = ""


@dataclass
class ServerRestart(DownMessage):
    type: ClassVar[str] = "server_restart"
    retry_after: int = 5


@dataclass
class UpAnswer(DownMessage):
    type: ClassVar[str] = "up_answer"
    sdp: str = ""


@dataclass
class DownOffer(DownMessage):
    type: ClassVar[str] = "down_offer"
    sdp: str = ""
    tracks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MediaRestart(DownMessage):
    """The SFU lost this participant's peer connections (its worker died and runs
    again): close both, offer a fresh up connection; a fresh down offer follows."""

    type: ClassVar[str] = "media_restart"


@dataclass
class E2eeKeyDown(DownMessage):
    type: ClassVar[str] = "e2ee_key"
    payload: str = ""
    from_: str = ""


DOWN_TYPES: dict[str, type[DownMessage]] = {
    cls.type: cls
    for cls in (
        HelloDown, Pong, Error, LoginOk, GatewayOk, DialInOpen, RoomList, SlugCheck, RoomCreated,
        WaitingForLeader, LobbyStatus, Joined, Participants, LobbyQueue, RoomState,
        ChatDown, MuteRequestDown, Removed, RoomEnded, ServerRestart, UpAnswer, DownOffer,
        E2eeKeyDown, ResumeToken, LeaderState, MediaRestart,
    )
}  # fmt: skip


def encode_down(msg: DownMessage) -> dict[str, Any]:
    """A down message as a JSON-ready dict; `from_` becomes `from`."""
    out = encode(msg)
    if "from_" in out:
        out["from"] = out.pop("from_")
    return out


def parse_down(data: dict[str, Any]) -> DownMessage:
    """Parses a down message leniently (unknown fields are ignored)."""
    cls = DOWN_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ProtocolViolation("unknown_type", f"unknown type: {str(data.get('type'))[:32]}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if "from" in data and "from_" in names:
        kwargs["from_"] = data["from"]
    msg: DownMessage = cls(**kwargs)
    return msg
