"""Snapshots of what the leader sees: login, room list, room and help, in both languages.

Deterministic on purpose: a fixed terminal size, no cursor blink, no live refresh, a
fixed clock and fixed data from the in-memory `FakeSession` (snapshots only; every
behaviour test talks to a real server). Update with `pytest --snapshot-update`.
"""

from __future__ import annotations

from typing import Any

import pytest
from fake_session import FIXED_NOW, FakeSession
from textual.pilot import Pilot

from tui.app import KreisConsole

pytestmark = pytest.mark.tui

SIZE = (120, 40)
LANGS = ["en", "de"]


def console(lang: str, session: FakeSession, **kwargs: Any) -> KreisConsole:
    return KreisConsole(
        lang=lang,
        session=session,
        cursor_blink=False,
        live_refresh=False,
        fixed_clock=FIXED_NOW,
        **kwargs,
    )


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize("lang", LANGS)
def test_login_screen(snap_compare: Any, lang: str) -> None:
    app = console(
        lang,
        FakeSession(logged_in=False),
        server_url="https://kreis.example.org",
        group="kreuzberg",
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


@pytest.mark.parametrize("lang", LANGS)
def test_rooms_screen(snap_compare: Any, lang: str) -> None:
    assert snap_compare(console(lang, FakeSession()), terminal_size=SIZE, run_before=settle)


@pytest.mark.parametrize("lang", LANGS)
def test_room_screen(snap_compare: Any, lang: str) -> None:
    app = console(lang, FakeSession(with_room=True))
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


@pytest.mark.parametrize("lang", LANGS)
def test_help_screen(snap_compare: Any, lang: str) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    app = console(lang, FakeSession(with_room=True))
    assert snap_compare(app, terminal_size=SIZE, run_before=open_help)


async def test_language_switch_relabels_the_room_screen() -> None:
    """F2 switches the language at runtime; the footer and tables follow."""
    app = console("en", FakeSession(with_room=True))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.query_one(".lobby-title").render().plain.startswith("Lobby")  # type: ignore[attr-defined]
        await pilot.press("f2")
        await settle(pilot)
        assert app.screen.query_one(".lobby-title").render().plain.startswith("Warteraum")  # type: ignore[attr-defined]
        from tui.widgets.key_bar import KeyBar

        assert "Einlassen" in str(app.screen.query_one(KeyBar).render())


@pytest.mark.parametrize("lang", LANGS)
async def test_every_room_action_is_in_the_key_bar(lang: str) -> None:
    from tui.i18n import t
    from tui.screens.room import RoomScreen
    from tui.widgets.key_bar import KeyBar

    app = console(lang, FakeSession(with_room=True))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = str(app.screen.query_one(KeyBar).render())
        for _keys, _action, text, show in RoomScreen.KEYS:
            if show:
                assert t(text) in shown, text


async def test_room_change_during_teardown_is_harmless() -> None:
    """A room event that lands while Textual takes the widgets down draws nothing.

    CI once failed here: a guest left as the console was quitting, and the redraw
    looked for a table that was already gone.
    """
    from tui.events import RoomChanged
    from tui.screens.room import RoomScreen
    from tui.widgets.participants_table import ParticipantsTable

    app = console("en", FakeSession(with_room=True))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RoomScreen)
        await screen.query_one(ParticipantsTable).remove_children()
        screen.on_session(RoomChanged(slug="dienstag-abend", what="participants"))
        await settle(pilot)
        assert app.is_running and app.return_code is None
