"""An in-memory stand-in for the console session, for snapshot tests only.

Snapshots need fixed data and no network: `FakeSession` is a `ConsoleSession` whose
socket is replaced by canned answers. Every behaviour test uses the real server.
"""

from __future__ import annotations

from typing import Any

from app.protocol import UpMessage, encode
from tui.session import ConsoleSession, RoomView

FIXED_NOW = 1_764_000_000.0
"""The 'now' of every snapshot (lobby wait times are measured from it)."""

ROOMS: list[dict[str, Any]] = [
    {
        "slug": "dienstag-abend",
        "participants": 4,
        "lobby": 2,
        "settings": {"lobby": True, "locked": False, "has_password": True, "e2ee": False,
                     "dial_in": True},
    },
    {
        "slug": "ruhig-tanne-4821",
        "participants": 1,
        "lobby": 0,
        "settings": {"lobby": True, "locked": True, "has_password": False, "e2ee": True,
                     "dial_in": False},
    },
]  # fmt: skip


def sample_room() -> RoomView:
    """A room with two people knocking, four participants (one of them away, i.e. their
    connection dropped and they may come back) and some chat."""
    room = RoomView("dienstag-abend", url="https://kreis.example.org/dienstag-abend")
    room.settings = {
        "lobby": True, "locked": False, "has_password": True, "e2ee": False, "dial_in": True,
    }  # fmt: skip
    room.dial_in_pin = "482913570"
    room.dial_in_numbers = ["+49 30 1234567"]
    room.entrants = [
        {"id": "p_lobby00000000001", "name": "Sonnenblume", "kind": "browser",
         "since": int(FIXED_NOW) - 95},
        {"id": "p_lobby00000000002", "name": "Telefon …47", "kind": "phone",
         "since": int(FIXED_NOW) - 12},
    ]  # fmt: skip
    room.participants = [
        {"id": "p_leader0000000001", "name": "Konsole", "role": "leader", "kind": "console",
         "mic": False, "camera": False, "screen": False, "hand": False, "e2ee": "off"},
        {"id": "p_guest00000000001", "name": "Wolke", "role": "guest", "kind": "browser",
         "mic": True, "camera": True, "screen": False, "hand": True, "e2ee": "off",
         "away": True},
        {"id": "p_guest00000000002", "name": "[bold]Nicht fett[/bold]", "role": "coleader",
         "kind": "browser", "mic": False, "camera": True, "screen": True, "hand": False,
         "e2ee": "off"},
        {"id": "p_phone00000000001", "name": "Telefon …13", "role": "phone", "kind": "phone",
         "mic": True, "camera": False, "screen": False, "hand": False, "e2ee": "unable"},
    ]  # fmt: skip
    room.chat.extend(
        [
            {"type": "chat", "room": room.slug, "from": "p_guest00000000001", "name": "Wolke",
             "text": "Guten Abend zusammen!", "to": None, "ts": int(FIXED_NOW) - 300,
             "history": False, "lobby": False},
            {"type": "chat", "room": room.slug, "from": "p_lobby00000000001",
             "name": "Sonnenblume", "text": "Ich bin etwas zu spät, sorry.", "to": None,
             "ts": int(FIXED_NOW) - 60, "history": False, "lobby": True},
        ]
    )  # fmt: skip
    room.chat_total = len(room.chat)
    return room


class FakeSession(ConsoleSession):
    """A logged-in session with fixed rooms; commands are recorded, not sent."""

    def __init__(self, *, with_room: bool = False, logged_in: bool = True) -> None:
        super().__init__("https://kreis.example.org", lang="en")
        self.group = "kreuzberg"
        self.rooms = [dict(r) for r in ROOMS]
        self.status = "online" if logged_in else "offline"
        self.room = sample_room() if with_room else None
        self.sent: list[dict[str, Any]] = []

    async def _open(self) -> None:
        self.status = "online"

    async def _send(self, msg: UpMessage | dict[str, Any]) -> None:
        self.sent.append(encode(msg) if isinstance(msg, UpMessage) else dict(msg))

    async def _request(
        self, msg: UpMessage, *types: str, room: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        await self._send(msg)
        if msg.type == "list_rooms":
            return {"type": "room_list", "rooms": self.rooms}
        if msg.type == "check_slug":
            return {"type": "slug_check", "slug": "", "ok": True, "warning": None,
                    "suggestion": "ruhig-tanne-4821"}  # fmt: skip
        if msg.type == "watch":
            self.room = sample_room()
        return {"type": types[0] if types else "ok", "room": room}

    async def close(self) -> None:
        self.status = "offline"
