"""The participants table against a real server: someone whose connection dropped.

A participant whose socket drops is listed `away` until their resume token expires
(docs/protocol.md, `participants`). The console marks them "getrennt" and the leader
can still remove them, which kills the token: they can only come back by knocking.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_console_flow import SIZE, SLUG, console, guest, log_in_and_start_room, wait_for

from app.client import KreisClient
from tui.screens.confirm import RemoveScreen

pytestmark = pytest.mark.tui


async def test_a_dropped_participant_is_marked_and_can_be_removed(
    kreis_server: Any, tmp_path: Any
) -> None:
    app = console(kreis_server, tmp_path)
    app.bell = lambda: None
    clients: list[KreisClient] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await log_in_and_start_room(pilot, app, kreis_server.password)
            await pilot.press("f2")  # German
            room = app.session.room
            assert room is not None
            anna, _ = await guest(kreis_server, "Anna")
            clients.append(anna)
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            await pilot.press("1", "a")
            joined = await anna.expect("joined")
            await wait_for(pilot, lambda: len(room.participants) == 1)

            await anna.close()  # the network drops: no `leave`
            await wait_for(pilot, lambda: bool(room.participants[0].get("away")))
            people = app.screen.query_one("#people-table")
            await pilot.pause()
            shown = "\n".join(people.render_line(y).text for y in range(people.size.height))
            assert "Anna" in shown and "getrennt" in shown, shown

            await pilot.press("2", "r")
            await wait_for(pilot, lambda: isinstance(app.screen, RemoveScreen))
            await pilot.press("j")
            await wait_for(pilot, lambda: not room.participants)

            # Removed while away: the resume token is dead, so Anna has to knock.
            again = KreisClient(kreis_server.url, kind="browser", lang="de")
            clients.append(again)
            await again.connect()
            answer = await again.request(
                {
                    "type": "join",
                    "room": SLUG,
                    "name": "Anna",
                    "resume": joined["resume"],
                    "invite": kreis_server.invite(SLUG),
                },
                "lobby_status",
                "joined",
                "error",
            )
            assert answer["type"] == "lobby_status", answer
            assert app.is_running
    finally:
        for client in clients:
            await client.close()
