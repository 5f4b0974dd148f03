"""Hostile display names at the leader's console, against a real server.

Issue 11: the knock notification rendered a stranger's name as Textual markup, so a
guest named `[@click=screen.admit]Anna Schmidt[/]` was let in when the leader clicked
the toast to dismiss it, and `[/]` crashed the console. Here real guests
(`KreisClient`s) knock with every name of tests/hostile_names.py while the console,
driven by Pilot, shows the room: a click on a knock only dismisses it, and no name
crashes the console or shows as anything but its own characters.

HOME, the XDG directories and the working directory are a fresh temporary directory,
so a screenshot (`[@click=app.screenshot()]`) would show up there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hostile_names import ALL, MARKUP_CLICKS
from test_console_flow import SIZE, SLUG, console, log_in_and_start_room, wait_for
from textual.errors import NoWidget
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import RichLog
from textual.widgets._toast import Toast

from app.client import KreisClient
from tui.app import KreisConsole
from tui.screens.confirm import ConfirmScreen
from tui.screens.room import RoomScreen
from tui.screens.rooms import RoomsScreen
from tui.session import RoomView

pytestmark = [pytest.mark.tui, pytest.mark.security, pytest.mark.timeout(120)]

REFUSED_CODES = {"bad_name", "bad_message", "reserved_name"}
"""What the server may answer to a name it will not take (too long, blank, reserved)."""

KNOCKS_AT_ONCE = 5
"""Guests that knock together: their toasts all fit on the console's screen."""

SPOKEN_LAST = [
    "[@click=screen.admit]Anna Schmidt[/]",
    "[/]",
    "[@click=app.screenshot()]Carla[/]",
]
"""Chat lines written last, so that they are on screen when the chat is read."""


@pytest.fixture
def quiet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh HOME, XDG directories and working directory; yields their root."""
    root = tmp_path / "home-and-cwd"
    home = root / "home"
    for sub in ("cwd", "xdg-config", "xdg-data", "xdg-cache", "xdg-state"):
        (root / sub).mkdir(parents=True)
    (home / "Downloads").mkdir(parents=True)  # where Textual saves a screenshot
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(home / "Downloads"))
    for name in ("config", "data", "cache", "state"):
        monkeypatch.setenv(f"XDG_{name.upper()}_HOME", str(root / f"xdg-{name}"))
    monkeypatch.chdir(root / "cwd")
    yield root


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def invite_code(url: str) -> str | None:
    """The `k` of a room link (servers that hand out invite links), else None."""
    codes = parse_qs(urlsplit(url).query).get("k")
    return codes[0] if codes else None


async def knock(server: Any, name: str, invite: str | None) -> tuple[KreisClient, dict[str, Any]]:
    """A browser guest that knocks with `name`; returns it and the server's answer."""
    client = KreisClient(server.url, kind="browser", lang="de")
    await client.connect()
    join: dict[str, Any] = {"type": "join", "room": SLUG, "name": name}
    if invite is not None:
        join["invite"] = invite
    answer = await client.request(join, "lobby_status", "joined", "error")
    return client, answer


async def say_own_names(
    pilot: Pilot[Any], room: RoomView, speakers: list[tuple[str, KreisClient]]
) -> None:
    """Each speaker sends its own name as a chat line; returns once the console has
    every line the server took (one it refuses comes back to its sender as an error)."""
    before = room.chat_total
    await asyncio.gather(*(client.send({"type": "chat", "text": n}) for n, client in speakers))

    def arrived() -> bool:
        refused = sum(
            any(m.get("type") == "error" and m.get("ref") == "chat" for m in client.history)
            for _name, client in speakers
        )
        return bool(room.chat_total - before + refused >= len(speakers))

    await wait_for(pilot, arrived)


def rendered(widget: Widget) -> str:
    """What a widget shows on screen right now, line by line."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


def toasts_on_screen(app: KreisConsole) -> list[Toast]:
    """The toasts that are drawn where a click on their first character would land."""
    found = []
    for toast in app.screen.query(Toast):
        x, y = first_character(toast)
        try:
            under, _ = app.screen.get_widget_at(toast.region.x + x, toast.region.y + y)
        except NoWidget:
            continue
        if under is toast:
            found.append(toast)
    return found


def toast_about(app: KreisConsole, name: str) -> Toast | None:
    """The toast on screen whose message holds `name`.

    Found by the notification's message, not by what it shows: a console that renders
    the name as markup must still have its toast clicked.
    """
    return next((t for t in toasts_on_screen(app) if name in t._notification.message), None)


def first_character(toast: Toast) -> tuple[int, int]:
    """Where the message begins inside the toast: the name, in a knock."""
    return toast.gutter.left, toast.gutter.top


async def test_clicking_a_knock_only_dismisses_it(
    kreis_server: Any, tmp_path: Path, quiet_home: Path
) -> None:
    app = console(kreis_server, tmp_path)
    app.bell = lambda: None
    guests: list[KreisClient] = []
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await log_in_and_start_room(pilot, app, kreis_server.password)
            room = app.session.room
            assert room is not None
            await wait_for(pilot, lambda: room.settings.get("lobby") is True)
            invite = invite_code(room.url)
            assert invite, room.url  # the console holds the room's invitation link
            shown: dict[str, str] = {}
            for count, name in enumerate(MARKUP_CLICKS, start=1):
                client, answer = await knock(kreis_server, name, invite)
                guests.append(client)
                assert answer["type"] == "lobby_status", (name, answer)
                await wait_for(pilot, lambda n=name: toast_about(app, n) is not None)  # type: ignore[misc]
                toast = toast_about(app, name)
                assert toast is not None
                shown[name] = toast.render().plain
                await pilot.click(toast, offset=first_character(toast))
                await wait_for(pilot, lambda t=toast: not t.is_attached)  # type: ignore[misc]
                await pilot.pause(0.3)  # anything the click set off reaches the server
                assert files_in(quiet_home) == [], name  # no screenshot, nothing
                assert app.is_running, name
                assert isinstance(app.screen, RoomScreen), (name, app.screen)
                assert len(room.entrants) == count, (name, room.entrants)
                assert room.settings.get("lobby") is True, name

            # The server agrees: everyone still waits, the lobby is still on.
            [listed] = [r for r in await app.session.list_rooms() if r["slug"] == SLUG]
            assert listed["lobby"] == len(MARKUP_CLICKS) and listed["participants"] == 0
            assert listed["settings"]["lobby"] is True
            for client in guests:
                assert client.latest("joined") is None
                assert not [m for m in client.history if m.get("state") == "denied"]
            for name, text in shown.items():
                assert name in text, (name, text)  # the toast showed the characters

            # Watched again from the list, the room still has its invitation link
            # (from room_state), so that `u` copies a link the guests can use.
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RoomsScreen))
            await wait_for(pilot, lambda: app.screen.selected_slug == SLUG)  # type: ignore[attr-defined]
            app.screen.query_one("#rooms-table").focus()  # (the new-room field had it)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
            watched = app.session.room
            assert watched is not None and watched is not room
            await wait_for(pilot, lambda: invite_code(watched.url) == invite)
    finally:
        for client in guests:
            await client.close()
    assert files_in(quiet_home) == []


async def test_no_name_crashes_the_console_or_shows_as_markup(
    server_factory: Any, tmp_path: Path, quiet_home: Path
) -> None:
    server = server_factory(rooms={"max_participants": 200})
    app = console(server, tmp_path)
    app.bell = lambda: None
    waiting: list[tuple[str, KreisClient]] = []
    refused: dict[str, str] = {}
    shown: dict[Toast, str] = {}

    def new_toasts(app: KreisConsole) -> list[Toast]:
        return [toast for toast in toasts_on_screen(app) if toast not in shown]

    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await log_in_and_start_room(pilot, app, server.password)
            await pilot.press("f2")  # the leader reads German from here on
            room = app.session.room
            assert room is not None
            invite = invite_code(room.url)

            # Everyone knocks, a few at a time; names the server will not take are
            # refused on the guest's side (too long, blank, reserved), which is fine.
            for start in range(0, len(ALL), KNOCKS_AT_ONCE):
                names = ALL[start : start + KNOCKS_AT_ONCE]
                answers = await asyncio.gather(*(knock(server, n, invite) for n in names))
                for name, (client, answer) in zip(names, answers, strict=True):
                    if answer["type"] == "error":
                        refused[name] = str(answer.get("code"))
                        await client.close()
                        continue
                    assert answer["type"] == "lobby_status", (name, answer)
                    waiting.append((name, client))
                # Every knock is drawn before the next ones come; then they go, as a
                # stack of 50 toasts would only slow the console down.
                await wait_for(pilot, lambda: len(waiting) == len(shown) + len(new_toasts(app)))
                for toast in new_toasts(app):
                    shown[toast] = toast.render().plain
                app.clear_notifications()
            assert set(refused.values()) <= REFUSED_CODES, refused
            assert len(waiting) >= 35, refused  # most reach the console (41 of 61 today)
            assert set(SPOKEN_LAST) <= {name for name, _ in waiting}
            await wait_for(pilot, lambda: len(room.entrants) == len(waiting))
            await pilot.pause()
            lobby = rendered(app.screen.query_one("#lobby-table"))
            assert "[@click=" in lobby and "[/]" in lobby, lobby
            for name in ("[@click=screen.admit]Anna Schmidt[/]", "[/]", "[b]Frieda"):
                assert f"{name} klopft und wartet im Warteraum." in shown.values(), shown

            # The leader admits everyone (A, then yes).
            await pilot.press("1", "A")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("j")
            for _name, client in waiting:
                await client.expect("joined", timeout=20)
            await wait_for(pilot, lambda: len(room.participants) == len(waiting))
            await pilot.pause()
            people = rendered(app.screen.query_one("#people-table"))
            assert "[@click=" in people and "[/]" in people, people

            # Each writes its own name, unchanged, into the chat; three markup names
            # last, so that their lines are the ones on screen at the end.
            await say_own_names(pilot, room, [nc for nc in waiting if nc[0] not in SPOKEN_LAST])
            for spoken in SPOKEN_LAST:
                await say_own_names(pilot, room, [nc for nc in waiting if nc[0] == spoken])
            await pilot.pause()
            chat = rendered(app.screen.query_one("#chat-log", RichLog))
            for name in SPOKEN_LAST:
                assert f"{name}: {name}" in chat, (name, chat)

            assert app.is_running and app.return_code is None
            assert isinstance(app.screen, RoomScreen)
    finally:
        await asyncio.gather(*(client.close() for _name, client in waiting))
    assert files_in(quiet_home) == []
    print("refused by the server:", {name[:24]: code for name, code in refused.items()})
