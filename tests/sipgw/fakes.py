"""An in-memory `RoomLink` for gateway tests that need no Kreis server.

`FakeRoom` stands in for the server: it knows PINs (compared in constant time, like
the server), keeps a lobby whose verdict a test decides, and carries audio: a test
can feed "room audio" to the caller and read what the caller said. Like the server it
locks a caller key out after `caller_tries` wrong PINs (answering `RATE_LIMITED`,
also for the attempt that locks it); the real counting is app/ratelimit.py's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sipgw.audio import Pcm, RoomMix
from sipgw.errors import LinkError
from sipgw.link import CallerLabel, DialIn, DialInResult, LinkEvent, RoomLink
from sipgw.lockout import CallerKeys, pins_equal


@dataclass
class FakeRoom:
    """A room reachable by PIN; `lobby` False admits callers directly."""

    slug: str
    pin: str
    lobby: bool = True
    links: list[FakeLink] = field(default_factory=list)


class FakeServer:
    """Rooms by PIN, and every link made, for assertions."""

    def __init__(self, reachable: bool = True, caller_tries: int = 3) -> None:
        self.caller_tries = caller_tries
        self.wrong: dict[str, int] = {}
        """Wrong PINs per caller key."""
        self.keys_seen: list[CallerKeys] = []
        self.rooms: list[FakeRoom] = []
        self.links: list[FakeLink] = []
        self.reachable = reachable
        self.pins_tried: list[str] = []
        self.labels: list[str | None] = []

    def add_room(self, slug: str, pin: str, lobby: bool = True) -> FakeRoom:
        room = FakeRoom(slug, pin, lobby)
        self.rooms.append(room)
        return room

    def factory(self) -> Callable[[], RoomLink]:
        def make() -> RoomLink:
            link = FakeLink(self)
            self.links.append(link)
            return link

        return make

    def find(self, pin: str) -> FakeRoom | None:
        found = None
        for room in self.rooms:  # no early exit: the same work for every PIN
            if pins_equal(pin, room.pin):
                found = room
        return found


class FakeLink(RoomLink):
    """One call's link to a `FakeServer`."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.room: FakeRoom | None = None
        self.events: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self.mix: RoomMix | None = None
        self.caller_audio: list[Pcm] = []
        self._lock = threading.Lock()
        self.mic: list[bool] = []
        self.hands: list[bool] = []
        self.closed = False
        self.in_lobby = False
        self.admitted = False

    async def connect(self) -> None:
        if not self.server.reachable:
            raise LinkError("fake server unreachable")

    async def check(self, keys: CallerKeys) -> float:
        return 60.0 if self.server.wrong.get(keys.caller, 0) >= self.server.caller_tries else 0.0

    async def dial_in(self, pin: str, caller: CallerLabel, keys: CallerKeys) -> DialInResult:
        server = self.server
        server.keys_seen.append(keys)
        if server.wrong.get(keys.caller, 0) >= server.caller_tries:
            return DialInResult(DialIn.RATE_LIMITED, 60)
        server.pins_tried.append(pin)
        server.labels.append(caller.text)
        room = server.find(pin)
        if room is None:
            server.wrong[keys.caller] = server.wrong.get(keys.caller, 0) + 1
            if server.wrong[keys.caller] >= server.caller_tries:
                return DialInResult(DialIn.RATE_LIMITED, 60)
            return DialInResult(DialIn.BAD_PIN)
        self.room = room
        room.links.append(self)
        if room.lobby:
            self.in_lobby = True
            return DialInResult(DialIn.LOBBY)
        self.admitted = True
        return DialInResult(DialIn.ADMITTED)

    # --- what the "leader" does
    def admit(self) -> None:
        self.in_lobby, self.admitted = False, True
        self.events.put_nowait(LinkEvent.ADMITTED)

    def tell(self, event: LinkEvent) -> None:
        self.events.put_nowait(event)

    def push_room_audio(self, pcm: Pcm, track: str = "p_other") -> None:
        """Room audio for the caller (only reaches them once media started)."""
        if self.mix is not None:
            self.mix.push(track, pcm)

    def caller_pcm(self) -> Pcm:
        with self._lock:
            return np.concatenate(self.caller_audio) if self.caller_audio else np.zeros(0)

    # --- RoomLink
    async def next_event(self) -> LinkEvent:
        return await self.events.get()

    async def start_media(self, room: RoomMix) -> Callable[[Pcm], None]:
        assert self.admitted, "media before admission"
        self.mix = room

        def sink(pcm: Pcm) -> None:
            with self._lock:
                self.caller_audio.append(pcm.copy())

        return sink

    async def set_mic(self, on: bool) -> None:
        self.mic.append(on)

    async def set_hand(self, raised: bool) -> None:
        self.hands.append(raised)

    async def close(self) -> None:
        self.closed = True
