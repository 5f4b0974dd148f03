"""Textual messages the console session posts to the app, one dataclass per event.

The session (tui/session.py) turns protocol messages into these; the app forwards them
to the screens on its stack. They carry just enough to react: the data itself lives in
the session's `RoomView`, so a screen that was not on top catches up by re-reading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from textual.message import Message


@dataclass
class SessionEvent(Message):
    """Base of everything the session reports (Textual calls `__post_init__`)."""


@dataclass
class RoomChanged(SessionEvent):
    """Something about the watched room changed."""

    slug: str
    """The room's slug."""
    what: Literal["state", "lobby", "participants", "chat"]
    """Which part of the `RoomView` to redraw."""


@dataclass
class Knock(SessionEvent):
    """Someone new is waiting in the lobby (ring the bell)."""

    slug: str
    """The room knocked at."""
    name: str
    """The entrant's display name (data, never markup)."""


@dataclass
class RoomClosed(SessionEvent):
    """The watched room ended or is gone."""

    slug: str
    """The room's slug."""
    reason: Literal["ended", "gone"]
    """`ended`: someone ended it; `gone`: it was not there after a reconnect."""


@dataclass
class ConnectionChanged(SessionEvent):
    """The signalling connection went down or came back."""

    status: Literal["online", "reconnecting"]
    """The new state."""
    reason: str = ""
    """Why the last reconnect attempt failed (a console error code), if it did."""


@dataclass
class ServerNotice(SessionEvent):
    """An `error` answer to a command the console sent without waiting for a reply."""

    code: str
    """Stable error code from docs/protocol.md."""
    message: str = ""
    """The server's sentence (in the language given at `hello`)."""
    ref: str | None = None
    """The type of the command that failed."""
    retry_after: int | None = None
    """Seconds to wait, for `rate_limited`."""
    detail: dict[str, Any] = field(default_factory=dict)
    """The whole error message."""
