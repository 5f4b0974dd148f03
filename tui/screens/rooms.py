"""The rooms screen: the group's live rooms, and starting a new one.

The list refreshes itself every few seconds (`list_rooms`). While the leader types a
new room's address the server checks it live (`check_slug`) and the screen says
whether it is free, too short or easy to guess, with a better suggestion.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, DataTable, Input, Static

from tui.errors import ConsoleError, explain
from tui.i18n import t
from tui.screens.base import ConsoleScreen, KeySpec
from tui.text import as_text, sentence
from tui.widgets.key_bar import KeyBar

REFRESH_SECONDS = 5.0


def settings_summary(settings: dict[str, Any]) -> str:
    """Short list of the switched-on settings, e.g. "Lobby, Password"."""
    names = [
        t(label)
        for key, label in (
            ("lobby", "hdr.lobby"),
            ("locked", "hdr.locked"),
            ("has_password", "hdr.password"),
            ("e2ee", "hdr.e2ee"),
            ("dial_in", "hdr.dial_in"),
        )
        if settings.get(key)
    ]
    return ", ".join(names) or "–"


class RoomsScreen(ConsoleScreen):
    """Live rooms of the group plus the form for a new room."""

    KEYS: ClassVar[list[KeySpec]] = [
        ("enter", "open", "key.open", True),
        ("n", "new", "key.new", True),
        ("f5", "refresh", "key.refresh", True),
        ("u", "copy_url", "key.copy", True),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="rooms-list"):
            yield Static(id="rooms-title", classes="section-title")
            table: DataTable[Any] = DataTable(id="rooms-table", cursor_type="row")
            yield table
            yield Static(id="rooms-empty")
            yield Static(id="rooms-url")
        with Vertical(id="new-room"):
            yield Static(id="new-title", classes="section-title")
            yield Input(id="slug")
            yield Static(id="slug-check")
            with Horizontal(id="new-options"):
                yield Checkbox(id="new-lobby", value=True)
                yield Checkbox(id="new-dial-in", value=False)
            yield Input(id="new-password", password=True)
            yield Button(id="create", variant="primary")
        yield KeyBar()

    def on_mount(self) -> None:
        for each in self.query(Input):
            each.cursor_blink = self.console.cursor_blink
        self.relabel()
        self.query_one("#rooms-table", DataTable).focus()
        self.refresh_rooms()
        if self.console.live_refresh:
            self.set_interval(REFRESH_SECONDS, self.refresh_rooms)

    def relabel(self) -> None:
        session = self.console.session
        self.query_one("#rooms-title", Static).update(sentence("rooms.title", group=session.group))
        self.query_one("#new-title", Static).update(t("rooms.new"))
        self.query_one("#slug", Input).placeholder = t("rooms.slug")
        self.query_one("#new-password", Input).placeholder = t("rooms.password")
        self.query_one("#new-lobby", Checkbox).label = t("rooms.lobby")
        self.query_one("#new-dial-in", Checkbox).label = t("rooms.dial_in")
        self.query_one("#create", Button).label = t("rooms.create")
        self.show_rooms(session.rooms)

    def on_screen_resume(self) -> None:
        self.refresh_rooms()

    # ------------------------------------------------------------------ the list

    @work(exclusive=True, group="list_rooms")
    async def refresh_rooms(self) -> None:
        try:
            rooms = await self.console.session.list_rooms()
        except ConsoleError:
            return  # the connection status shows what is wrong
        self.show_rooms(rooms)

    def show_rooms(self, rooms: list[dict[str, Any]]) -> None:
        table = self.query_one("#rooms-table", DataTable)
        keep = self.selected_slug
        table.clear(columns=True)
        table.add_column(t("rooms.col.slug"), key="slug", width=40)
        table.add_column(t("rooms.col.people"), key="people", width=9)
        table.add_column(t("rooms.col.lobby"), key="lobby", width=9)
        table.add_column(t("rooms.col.settings"), key="settings", width=50)
        for room in rooms:
            # Cells are Text: DataTable would parse a str as markup.
            table.add_row(
                as_text(room.get("slug")),
                as_text(room.get("participants", 0)),
                as_text(room.get("lobby", 0), style="bold" if room.get("lobby") else ""),
                Text(settings_summary(dict(room.get("settings") or {}))),
                key=str(room.get("slug")),
            )
        for row, room in enumerate(rooms):
            if room.get("slug") == keep:
                table.move_cursor(row=row)
        self.query_one("#rooms-empty", Static).update("" if rooms else t("rooms.none"))
        self._show_url()

    @property
    def selected_slug(self) -> str | None:
        rooms = self.console.session.rooms
        table = self.query_one("#rooms-table", DataTable)
        if rooms and 0 <= table.cursor_row < len(rooms) and table.row_count:
            return str(rooms[table.cursor_row].get("slug"))
        return None

    @property
    def selected_url(self) -> str:
        """The selected room's invitation link (with its `?k=` code), else ""."""
        rooms = self.console.session.rooms
        slug = self.selected_slug
        for room in rooms:
            if room.get("slug") == slug:
                link = room.get("invite_url")
                return str(link) if link else f"{self.console.session.server_url}/{slug}"
        return ""

    def _show_url(self) -> None:
        url = self.selected_url
        self.query_one("#rooms-url", Static).update(sentence("rooms.url", url=url) if url else "")

    @on(DataTable.RowHighlighted, "#rooms-table")
    def _highlighted(self) -> None:
        self._show_url()

    @on(DataTable.RowSelected, "#rooms-table")
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        slug = self.selected_slug
        if slug:
            self._watch(slug)

    @work(exclusive=True, group="open")
    async def _watch(self, slug: str) -> None:
        try:
            await self.console.session.watch(slug)
        except ConsoleError as exc:
            self.notify(exc.explain(), severity="error", markup=False)
            self.refresh_rooms()
            return
        self.console.open_room()

    def action_refresh(self) -> None:
        self.refresh_rooms()

    def action_copy_url(self) -> None:
        url = self.selected_url
        if url:
            self.app.copy_to_clipboard(url)
            self.notify(t("copied", url=url), markup=False)

    # ------------------------------------------------------------------ new room

    def action_new(self) -> None:
        self.query_one("#slug", Input).focus()

    @on(Input.Changed, "#slug")
    def _slug_changed(self, event: Input.Changed) -> None:
        self._check_slug(event.value.strip())

    @work(exclusive=True, group="check_slug")
    async def _check_slug(self, slug: str) -> None:
        out = self.query_one("#slug-check", Static)
        if not slug:
            out.update("")
            return
        await asyncio.sleep(0.3)  # let the leader finish typing
        try:
            answer = await self.console.session.check_slug(slug)
        except ConsoleError as exc:
            out.update(as_text(exc.explain(), style="red"))
            return
        suggestion = str(answer.get("suggestion") or "")
        if not answer.get("ok"):
            reason = str(answer.get("reason") or "bad_slug")
            out.update(
                sentence("slug.bad", style="red", reason=explain(reason), suggestion=suggestion)
            )
        elif answer.get("warning") in ("short", "guessable"):
            out.update(sentence(f"slug.{answer['warning']}", style="yellow", suggestion=suggestion))
        else:
            out.update(Text(t("slug.ok"), style="green"))

    @on(Input.Submitted, "#slug")
    @on(Input.Submitted, "#new-password")
    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        slug = self.query_one("#slug", Input).value.strip()
        if not slug:
            self.query_one("#slug", Input).focus()
            return
        password = self.query_one("#new-password", Input).value or None
        if password is not None and len(password) < 4:
            self.query_one("#slug-check", Static).update(Text(t("password.short"), style="red"))
            return
        self._create_room(
            slug,
            self.query_one("#new-lobby", Checkbox).value,
            password,
            self.query_one("#new-dial-in", Checkbox).value,
        )

    @work(exclusive=True, group="open")
    async def _create_room(
        self, slug: str, lobby: bool, password: str | None, dial_in: bool
    ) -> None:
        try:
            await self.console.session.create_room(slug, lobby, password, dial_in)
        except ConsoleError as exc:
            self.query_one("#slug-check", Static).update(as_text(exc.explain(), style="red"))
            return
        self.query_one("#slug", Input).value = ""
        self.query_one("#new-password", Input).value = ""
        self.console.open_room()
