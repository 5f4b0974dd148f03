"""The interface between a phone call and its room: `RoomLink`.

A call's session (sipgw/session.py) only ever talks to a `RoomLink`: it hands over the
PIN and the masked caller label, waits for the lobby's verdict, then connects audio
both ways. `sipgw.roomlink.ServerLink` implements it against a real Kreis server
(signalling over WebSocket, media over aiortc); tests use an in-memory fake. One link
serves exactly one call.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from sipgw.audio import Pcm, RoomMix
from sipgw.lockout import CallerKeys


class DialIn(enum.Enum):
    """The answer to a PIN."""

    LOBBY = "lobby"
    """The PIN is right; the caller waits in the lobby."""
    ADMITTED = "admitted"
    """The PIN is right and the room has no lobby: the caller is in."""
    BAD_PIN = "bad_pin"
    """No room with that PIN (the same answer whether it ever existed or not)."""
    RATE_LIMITED = "rate_limited"
    """Too many attempts; `DialInResult.retry_after` says how long to wait."""


@dataclass(frozen=True)
class DialInResult:
    outcome: DialIn
    retry_after: float = 0.0
    """Seconds to wait, for `RATE_LIMITED`."""


class LinkEvent(enum.Enum):
    """Things the room tells a caller."""

    ADMITTED = "admitted"
    """The leader let the caller in (`joined`)."""
    DENIED = "denied"
    """The leader did not (`lobby_status/denied`)."""
    TIMEOUT = "timeout"
    """Nobody let the caller in in time (`lobby_status/timeout`)."""
    ENDED = "ended"
    """The room ended (`room_ended`, or `lobby_status/ended`)."""
    REMOVED = "removed"
    """The leader removed the caller."""
    MUTE_REQUEST = "mute_request"
    """A leader asks the caller to mute."""
    LOST = "lost"
    """The connection to the server broke."""


@dataclass(frozen=True)
class CallerLabel:
    """How the room shows a caller: `…47` or nothing at all (hide_numbers)."""

    text: str | None
    withheld: bool = False
    """The caller withheld its number (the room shows "unterdrückt"/"withheld")."""

    @classmethod
    def from_digits(cls, digits: str, hide_numbers: bool) -> CallerLabel:
        """Only the last two digits ever leave the gateway, and only if allowed."""
        if not digits:
            return cls(None, withheld=True)
        if hide_numbers or len(digits) < 2:
            return cls(None)
        return cls("…" + digits[-2:])


class RoomLink(ABC):
    """One call's connection to one room (created per call by a `LinkFactory`)."""

    @abstractmethod
    async def connect(self) -> None:
        """Reaches the server and authenticates the gateway (raises LinkError)."""

    @abstractmethod
    async def check(self, keys: CallerKeys) -> float:
        """Before the call is answered: seconds until the caller may try a PIN (0: now),
        from the server's lockout."""

    @abstractmethod
    async def dial_in(self, pin: str, caller: CallerLabel, keys: CallerKeys) -> DialInResult:
        """Sends the PIN with the caller's lockout keys; may be called again after
        `BAD_PIN`. `RATE_LIMITED`: the server locked the caller (now or earlier)."""

    @abstractmethod
    async def next_event(self) -> LinkEvent:
        """Waits for the next event from the room (lobby verdict, mute request, end)."""

    @abstractmethod
    async def start_media(self, room: RoomMix) -> Callable[[Pcm], None]:
        """After admission: starts audio both ways.

        Room audio is pushed into `room` (every voice but the caller's own); the
        returned function takes the caller's 16 kHz frames (called from the media
        thread, must not block) and publishes them as the caller's microphone.
        """

    @abstractmethod
    async def set_mic(self, on: bool) -> None:
        """Tells the room the caller muted or unmuted (`media_state`)."""

    @abstractmethod
    async def set_hand(self, raised: bool) -> None:
        """Raises or lowers the caller's hand (`hand`)."""

    @abstractmethod
    async def close(self) -> None:
        """Leaves the room and closes everything; safe to call twice."""


LinkFactory = Callable[[], RoomLink]
