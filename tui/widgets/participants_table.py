"""The participants table: who is in the room and what they are sending.

One row per admitted participant: name, role, mic, camera, screen, raised hand and the
E2EE state. Names are rendered as plain text (`tui.text`), never as markup.

Everyone who can hear is seen, whatever its kind: the role column says how someone
takes part when it is not a browser, e.g. "Leitung (Konsole)" for a leader listening
through `kreis console --audio`, "Telefon" for a caller. Role and kind come from the
server (authenticated), not from the name, so a guest named "Leitung (Konsole)" still
shows as "Gast". A participant whose connection dropped and who may still come back
(`away`) gets a second line "getrennt" and can be removed like anyone else.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.i18n import TEXTS, t
from tui.text import as_text, plain


def _label(prefix: str, value: object) -> str:
    key = f"{prefix}.{value}"
    return t(key) if key in TEXTS else plain(value)


def role_label(role: object, kind: object) -> str:
    """The role, and the kind too unless it is a browser or the role already says it:
    "Gast", "Co-Leitung", "Telefon", "Leitung (Konsole)"."""
    label = _label("role", role)
    if kind in ("browser", "", None) or kind == role:
        return label
    return t("role.with_kind", role=label, kind=_label("via", kind))


def name_cell(person: dict[str, Any]) -> Text:
    """The name as text; for someone `away`, a second line that says so."""
    name = as_text(person.get("name", ""))
    if person.get("away"):
        name.append("\n" + t("away"), style="bold italic yellow")
    return name


def _flag(value: object) -> Text:
    return Text(t("yes"), style="bold") if value else Text(t("no"), style="dim")


def hand_places(participants: list[dict[str, Any]]) -> dict[str, int]:
    """Raised hands numbered 1, 2, … in the order they went up (the server's
    `hand_seq`); a hand without one comes last."""
    raised = [p for p in participants if p.get("hand")]
    raised.sort(key=lambda p: p["hand_seq"] if isinstance(p.get("hand_seq"), int) else 1 << 62)
    return {str(p.get("id")): place for place, p in enumerate(raised, start=1)}


def _hand(place: int | None) -> Text:
    return Text(f"✋ {place}", style="bold") if place else Text(t("no"), style="dim")


class ParticipantsTable(Vertical):
    """Title plus a DataTable of the room's participants."""

    DEFAULT_CSS = """
    ParticipantsTable {
        height: 1fr;
        border: round $accent;
        padding: 0 1;
    }
    ParticipantsTable > .people-title {
        text-style: bold;
        color: $accent;
    }
    ParticipantsTable > DataTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.participants: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Static(classes="people-title")
        table: DataTable[Any] = DataTable(id="people-table", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        self.relabel()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#people-table", DataTable)

    def relabel(self) -> None:
        """Redraws the title and columns in the current language."""
        table = self.table
        table.clear(columns=True)
        for key, width in (
            ("name", 17),
            ("role", 18),
            ("mic", 5),
            ("camera", 6),
            ("screen", 6),
            ("hand", 5),
            ("e2ee", 10),
        ):
            table.add_column(t(f"col.{key}"), key=key, width=width)
        self.show(self.participants)

    def show(self, participants: list[dict[str, Any]]) -> None:
        """Shows the list, keeping the highlight on the same person if still there."""
        keep = self.selected_id
        self.participants = list(participants)
        self.query_one(".people-title", Static).update(
            t("room.participants", count=len(participants))
        )
        table = self.table
        table.clear()
        places = hand_places(self.participants)
        for p in self.participants:
            table.add_row(
                name_cell(p),
                Text(role_label(p.get("role", ""), p.get("kind", "browser"))),
                _flag(p.get("mic")),
                _flag(p.get("camera")),
                _flag(p.get("screen")),
                _hand(places.get(str(p.get("id")))),
                Text(_label("e2ee", p.get("e2ee", "off"))),
                key=str(p.get("id")),
                height=2 if p.get("away") else 1,
            )
        if keep is not None:
            for row, p in enumerate(self.participants):
                if p.get("id") == keep:
                    table.move_cursor(row=row)

    @property
    def selected_id(self) -> str | None:
        """The id of the highlighted participant."""
        if not self.participants:
            return None
        row = self.table.cursor_row
        if 0 <= row < len(self.participants):
            return str(self.participants[row].get("id"))
        return None

    @property
    def selected(self) -> dict[str, Any] | None:
        pid = self.selected_id
        return next((p for p in self.participants if p.get("id") == pid), None)
