"""One signalling WebSocket: who is on it, and an ordered, bounded outbox.

Identity and role live here, set by the server after login, gateway auth or admission,
and never taken from a message. Sending never blocks a handler: messages go into a
bounded queue that one writer task drains; a client too slow to keep up is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from app.protocol import DownMessage, Error, encode_down
from app.pseudonym import pseudonym
from app.rooms import new_id
from app.security import address_key

if TYPE_CHECKING:
    from app.resume import ResumeClaim
    from app.rooms import Member, Room

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 2000


def error_text(code: str, lang: str) -> str:
    """The sentence for an error code, in the connection's language."""
    from app.errors import ERROR_TEXTS

    en, de = ERROR_TEXTS.get(code, ERROR_TEXTS["internal"])
    return de if lang == "de" else en


@dataclass
class Waiting:
    """A `join` for a room no leader has started yet."""

    slug: str
    name: str
    password: str | None
    group: str
    """The group whose invitation the knock carries: only its room lets them in."""
    claim: ResumeClaim | None = None
    """Someone admitted before a server restart, back with a valid resume token: seated
    without the lobby when a leader's token restarts that very room (else they knock)."""


@dataclass(eq=False)
class Connection:
    """Server-side state of one WebSocket."""

    ws: web.WebSocketResponse
    address: str
    """Source address, used for rate limits only; never logged (log lines use `tag`)."""
    id: str = field(default_factory=lambda: new_id("p_"))
    """The participant id this connection gets when it enters a room."""
    kind: str = "browser"
    lang: str = "en"
    ready: bool = False
    group: str | None = None
    """Set after a successful leader login."""
    gateway: bool = False
    """Set after a successful gateway_auth."""
    room: Room | None = None
    member: Member | None = None
    waiting: Waiting | None = None
    watching: set[str] = field(default_factory=set)
    receive: frozenset[str] | None = None
    """What media this connection wants sent (`receive`); None: everything."""
    fewer_frames: bool = False
    """`receive` asked for the others' cameras at a quarter of their frame rate."""
    _outbox: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=OUTBOX_LIMIT)
    )
    _writer: asyncio.Task[None] | None = None
    _window_start: float = field(default_factory=time.monotonic)
    _window_count: int = 0
    closing: bool = False

    @property
    def tag(self) -> str:
        """The source as a pseudonym (`ps_…`, app/pseudonym.py) for warnings about this
        connection: support can tell one misbehaving source from many within a day, and
        the log never holds the address."""
        return pseudonym(address_key(self.address))

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while True:
            text = await self._outbox.get()
            if text is None:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def send(self, msg: DownMessage) -> None:
        if self.closing:
            return
        try:
            self._outbox.put_nowait(json.dumps(encode_down(msg)))
        except asyncio.QueueFull:
            log.warning("closing a connection from %s: it does not read its messages", self.tag)
            self.close_soon(1008)

    def error(self, code: str, ref: str | None = None, retry_after: int | None = None) -> None:
        self.send(Error(code, error_text(code, self.lang), ref, retry_after))

    def close_soon(self, code: int = 1000) -> None:
        """Closes after everything already queued has been sent."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        asyncio.get_running_loop().create_task(self._close_after_flush(code))

    async def _close_after_flush(self, code: int) -> None:
        if self._writer is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._writer), 5)
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)

    async def stop(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def count_message(self, limit_per_10s: int) -> bool:
        """Counts one incoming message; False when the connection floods."""
        now = time.monotonic()
        if now - self._window_start >= 10:
            self._window_start = now
            self._window_count = 0
        self._window_count += 1
        return self._window_count <= limit_per_10s

    @property
    def admitted(self) -> bool:
        return (
            self.member is not None
            and self.room is not None
            and self.member.id in self.room.participants
        )

    @property
    def in_lobby(self) -> bool:
        return (
            self.member is not None and self.room is not None and self.member.id in self.room.lobby
        )
