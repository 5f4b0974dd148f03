"""The console against a real server, driven by key presses only.

Scripted guests (`KreisClient`s) knock; the leader, at the console, admits one,
denies one, sets a room password that the next guest must give, removes a
participant and ends the room. Every outcome is checked on the guest's side too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from app.client import KreisClient
from tui.app import KreisConsole
from tui.config import ConsoleConfig
from tui.screens.confirm import ConfirmScreen, RemoveScreen
from tui.screens.prompt import PromptScreen
from tui.screens.room import RoomScreen
from tui.screens.rooms import RoomsScreen

pytestmark = pytest.mark.tui

SIZE = (120, 40)
SLUG = "donnerstag-kreis-4711"


async def wait_for(pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 20) -> None:
    """Lets the app run until `condition()` holds (or fails the test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.05)


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*text)


async def guest(
    server: Any, name: str, password: str | None = None
) -> tuple[KreisClient, dict[str, Any]]:
    """A browser guest that knocks with the room's invitation link (so the server
    tells it why a gate is shut); returns it and the server's first answer."""
    client = KreisClient(server.url, kind="browser", lang="de")
    await client.connect()
    invite = server.invite(SLUG)
    answer = await client.request(
        {"type": "join", "room": SLUG, "name": name, "password": password, "invite": invite},
        "lobby_status",
        "joined",
        "error",
    )
    return client, answer


def console(server: Any, tmp_path: Path) -> KreisConsole:
    app = KreisConsole(
        server_url=server.url,
        group=server.group,
        lang="en",
        config_path=tmp_path / "console.toml",
        cursor_blink=False,
    )
    app.session.reconnect_delays = (0.1, 0.2, 0.5)
    return app


async def log_in_and_start_room(pilot: Pilot[Any], app: KreisConsole, password: str) -> None:
    await pilot.pause()
    await type_text(pilot, password)  # address and group are filled in already
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RoomsScreen))
    await pilot.press("n")
    await type_text(pilot, SLUG)
    check = app.screen.query_one("#slug-check")
    # The server's live verdict: weekday + "kreis" + digits is guessable, with a suggestion.
    await wait_for(pilot, lambda: "easy to guess. Better: " in str(check.render()))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))


async def test_wrong_password_is_explained_and_nothing_is_saved(
    kreis_server: Any, tmp_path: Path
) -> None:
    app = console(kreis_server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_text(pilot, "falsch-falsch")
        await pilot.press("enter")
        error = app.screen.query_one("#login-error")
        await wait_for(pilot, lambda: "wrong" in str(error.render()))
        assert not isinstance(app.screen, RoomsScreen)
    assert not (tmp_path / "console.toml").exists()


async def test_unreachable_server_is_explained(tmp_path: Path) -> None:
    app = KreisConsole(server_url="http://127.0.0.1:9", group="g", lang="de", cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_text(pilot, "irgendwas")
        await pilot.press("enter")
        error = app.screen.query_one("#login-error")
        await wait_for(pilot, lambda: "nicht erreichbar" in str(error.render()))


async def test_leader_runs_a_room_with_keys_only(kreis_server: Any, tmp_path: Path) -> None:
    app = console(kreis_server, tmp_path)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    guests: list[KreisClient] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await log_in_and_start_room(pilot, app, kreis_server.password)
            saved = ConsoleConfig.load(tmp_path / "console.toml")
            assert (saved.server_url, saved.group) == (kreis_server.url, kreis_server.group)
            assert kreis_server.password not in (tmp_path / "console.toml").read_text()
            room = app.session.room
            assert room is not None

            # Two guests knock: the bell rings for each, the queue shows both.
            anna, answer = await guest(kreis_server, "Anna")
            guests.append(anna)
            assert answer == {
                "type": "lobby_status",
                "state": "waiting",
                "message": None,
                "leader_present": True,
            }
            await wait_for(pilot, lambda: len(room.entrants) == 1 and bells)
            await wait_for(
                pilot, lambda: any("Anna is knocking" in n.message for n in app._notifications)
            )
            bert, answer = await guest(kreis_server, "Bert")
            guests.append(bert)
            await wait_for(pilot, lambda: len(room.entrants) == 2 and len(bells) == 2)
            lobby = app.screen.query_one("#lobby-table")
            await wait_for(pilot, lambda: lobby.row_count == 2)  # type: ignore[attr-defined]

            # Admit the first (Anna), deny the next (Bert).
            await pilot.press("1", "a")
            joined = await anna.expect("joined")
            assert joined["role"] == "guest"
            await wait_for(pilot, lambda: [e["name"] for e in room.entrants] == ["Bert"])
            await pilot.press("d")
            status = await bert.expect("lobby_status")
            assert status["state"] == "denied"
            await wait_for(pilot, lambda: not room.entrants)

            # Set a room password: the next guest needs it.
            await pilot.press("k")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
            await type_text(pilot, "geheim1234")
            await pilot.press("enter")
            await wait_for(pilot, lambda: room.settings.get("has_password"))
            carla, answer = await guest(kreis_server, "Carla")
            guests.append(carla)
            assert answer["type"] == "error" and answer["code"] == "password_required"
            answer = await carla.request(
                {"type": "join", "room": SLUG, "name": "Carla", "password": "geheim1234"},
                "lobby_status",
                "joined",
            )
            assert answer["state"] == "waiting"
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            await pilot.press("1", "a")
            await carla.expect("joined")
            await wait_for(pilot, lambda: len(room.participants) == 2)

            # Remove the first participant (Anna) after confirming.
            people = app.screen.query_one("#people-table")
            await wait_for(pilot, lambda: people.row_count == 2)  # type: ignore[attr-defined]
            await pilot.press("2")
            target = room.participants[0]["name"]
            await pilot.press("r")
            await wait_for(pilot, lambda: isinstance(app.screen, RemoveScreen))
            await pilot.press("y")
            removed = await (anna if target == "Anna" else carla).expect("removed")
            assert removed["barred"] is False
            await wait_for(pilot, lambda: len(room.participants) == 1)

            # End the room after confirming: the last guest is told, the console goes back.
            left = carla if target == "Anna" else anna
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            ended = await left.expect("room_ended")
            assert ended["room"] == SLUG
            await wait_for(pilot, lambda: isinstance(app.screen, RoomsScreen))
            assert app.session.room is None
    finally:
        for client in guests:
            await client.close()


async def test_reconnect_keeps_room_and_queue(kreis_server: Any, tmp_path: Path) -> None:
    app = console(kreis_server, tmp_path)
    guests: list[KreisClient] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await log_in_and_start_room(pilot, app, kreis_server.password)
            room = app.session.room
            assert room is not None
            dora, _ = await guest(kreis_server, "Dora")
            guests.append(dora)
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            app.session.reconnect_delays = (1.0,)
            old = app.session.client
            assert old is not None and old._ws is not None
            await old._ws.close()  # the network drops
            header = app.screen.query_one("#room-header")
            await wait_for(pilot, lambda: "reconnecting" in str(header.render()))
            assert app.session.status == "reconnecting"
            await wait_for(
                pilot, lambda: app.session.status == "online" and app.session.client is not old
            )
            assert app.session.room is room and [e["name"] for e in room.entrants] == ["Dora"]
            assert isinstance(app.screen, RoomScreen)
            # The re-watched room still takes commands: admit Dora.
            await pilot.press("1", "a")
            await dora.expect("joined")
    finally:
        for client in guests:
            await client.close()


async def test_the_room_list_copies_the_invitation_link(kreis_server: Any, tmp_path: Path) -> None:
    """A room another leader started: the list shows and copies its invitation link
    (with the `?k=` code), not the bare address strangers get `room_closed` for."""
    other = KreisClient(kreis_server.url, kind="console")
    await other.connect()
    try:
        await other.request(
            {"type": "login", "group": kreis_server.group, "password": kreis_server.password},
            "login_ok",
        )
        await other.request({"type": "create_room", "slug": SLUG}, "room_created")
        app = console(kreis_server, tmp_path)
        link = f"{kreis_server.url}/{SLUG}?k={kreis_server.invite(SLUG)}"
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await type_text(pilot, kreis_server.password)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RoomsScreen))
            screen = app.screen
            assert isinstance(screen, RoomsScreen)
            await wait_for(pilot, lambda: screen.selected_slug == SLUG)
            shown = screen.query_one("#rooms-url")
            await wait_for(pilot, lambda: link in str(shown.render()))
            await pilot.press("u")
            await wait_for(pilot, lambda: app.clipboard == link)
    finally:
        await other.close()
