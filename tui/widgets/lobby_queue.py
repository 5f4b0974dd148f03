"""The lobby queue: who is waiting to be let in, oldest first.

Names are data from strangers: they are shown as plain `Text`, never as markup (a
`DataTable` would parse a `str` cell as markup). Each entrant's kind (browser, phone,
console) is shown next to the name, so that nobody is let in as something else.
The highlighted row stays on the same person when the queue changes.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.i18n import TEXTS, t
from tui.text import as_text, plain


def kind_label(kind: object) -> str:
    """`Browser`, `Telefon`/`Phone` or `Konsole`/`Console` (an unknown kind as it is)."""
    key = f"kind.{kind}"
    return t(key) if key in TEXTS else plain(kind)


def waited(since: Any, now: float | None = None) -> str:
    """How long someone has waited, as m:ss (empty when unknown)."""
    if not isinstance(since, int | float):
        return ""
    seconds = max(0, int((time.time() if now is None else now) - since))
    return f"{seconds // 60}:{seconds % 60:02d}"


class LobbyQueue(Vertical):
    """Title plus a table of the lobby entrants."""

    DEFAULT_CSS = """
    LobbyQueue {
        height: 1fr;
        border: round $warning;
        padding: 0 1;
    }
    LobbyQueue.-knocking {
        border: heavy $warning;
    }
    LobbyQueue > .lobby-title {
        text-style: bold;
        color: $warning;
    }
    LobbyQueue > .lobby-empty {
        color: $text-muted;
    }
    LobbyQueue > DataTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, clock: float | None = None) -> None:
        super().__init__(id=id)
        self.entrants: list[dict[str, Any]] = []
        self.refused = 0
        self.clock = clock
        """A fixed 'now' for snapshots; None means the real time."""

    def compose(self) -> ComposeResult:
        yield Static(classes="lobby-title")
        yield Static(classes="lobby-empty")
        table: DataTable[Any] = DataTable(id="lobby-table", cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        self.relabel()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#lobby-table", DataTable)

    def relabel(self) -> None:
        """Redraws titles and columns in the current language."""
        table = self.table
        table.clear(columns=True)
        table.add_column(t("col.name"), key="name", width=14)
        table.add_column(t("col.kind"), key="kind", width=7)
        table.add_column(t("col.since"), key="since", width=5)
        self.show(self.entrants)

    def show(self, entrants: list[dict[str, Any]], refused: int | None = None) -> None:
        """Shows the queue, keeping the highlight on the same person if still there,
        and how many knocks the server turned away (None: as before)."""
        keep = self.selected_id
        self.entrants = list(entrants)
        if refused is not None:
            self.refused = refused
        self.query_one(".lobby-title", Static).update(t("room.lobby", count=len(entrants)))
        lines = [] if entrants else [t("room.lobby_empty")]
        if self.refused:
            lines.append(t("room.lobby_refused", count=self.refused))
        self.query_one(".lobby-empty", Static).update(Text("\n".join(lines)))
        self.set_class(bool(entrants), "-knocking")
        table = self.table
        table.clear()
        for entrant in self.entrants:
            table.add_row(
                as_text(entrant.get("name", "")),
                Text(kind_label(entrant.get("kind", "browser"))),
                Text(waited(entrant.get("since"), self.clock)),
                key=str(entrant.get("id")),
            )
        if keep is not None:
            for row, entrant in enumerate(self.entrants):
                if entrant.get("id") == keep:
                    table.move_cursor(row=row)

    @property
    def selected_id(self) -> str | None:
        """The id of the highlighted entrant."""
        if not self.entrants:
            return None
        row = self.table.cursor_row
        if 0 <= row < len(self.entrants):
            return str(self.entrants[row].get("id"))
        return None

    @property
    def selected(self) -> dict[str, Any] | None:
        pid = self.selected_id
        return next((e for e in self.entrants if e.get("id") == pid), None)
