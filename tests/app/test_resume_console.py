"""The console starts its room again by itself after a restart of `kreis serve`.

A real server, a real `ConsoleSession` (tui/session.py): the console keeps the room's
latest resume token in memory, reconnects on its own after the restart, and its
`watch` with the token brings the room back, with a guest's token seating the guest
again without the lobby.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kreis_server import start_server
from page_checks import wait_for

from app.client import KreisClient
from tui.events import ConnectionChanged
from tui.session import ConsoleSession


async def test_the_console_brings_its_room_back(tmp_path: Path) -> None:
    home = tmp_path / "konsole"
    server = start_server(home)
    events: list[object] = []
    session = ConsoleSession(server.url, post=events.append)
    guest = KreisClient(server.url)
    slug = "konsole-neustart"
    try:
        await session.login(server.group, server.password)
        session.reconnect_delays = (0.5,)
        await session.create_room(slug)
        await guest.connect()
        await guest.send({"type": "join", "room": slug, "name": "Gerd"})
        await wait_for(lambda: _true(bool(session.room and session.room.entrants)), 20, "knock")
        assert session.room is not None
        await session.admit(session.room.entrants[0]["id"])
        joined = await guest.expect("joined", timeout=20)
        await wait_for(lambda: _true(bool(session.room and session.room.resume)), 20, "token")

        server.stop()
        await guest.close()
        server = start_server(home)

        def went(status: str) -> bool:
            return any(isinstance(e, ConnectionChanged) and e.status == status for e in events)

        await wait_for(lambda: _true(went("reconnecting")), 30, "the console noticed")
        await wait_for(lambda: _true(went("online")), 30, "the console is back")
        assert session.room is not None, events  # not closed as "gone"
        again = KreisClient(server.url)
        await again.connect()
        try:
            back = await again.request(
                {"type": "join", "room": slug, "name": "Gerd", "resume": joined["resume"]},
                "joined",
                "lobby_status",
                "waiting_for_leader",
            )
            assert (back["type"], back.get("id")) == ("joined", joined["id"]), back
        finally:
            await again.close()
    finally:
        await session.close()
        await guest.close()
        server.stop()


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
