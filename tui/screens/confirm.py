"""Yes/no questions before anything that cannot be undone.

`ConfirmScreen` is a `ModalScreen[bool]` (admit all, end the room, drop phone callers);
`RemoveScreen` adds the choice to bar the person for the room's lifetime. Both work
with the keyboard alone: y/j = yes, n/Escape = no, b = remove and bar.

Questions are `Text` (build them with `tui.text.sentence`): they name people and rooms,
and a name is never markup.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from tui.i18n import t
from tui.screens.base import ConsoleModal, KeySpec
from tui.text import sentence

RemoveChoice = Literal["remove", "bar"]

DIALOG_CSS = """
.dialog {
    width: 72;
    height: auto;
    border: thick $warning;
    background: $surface;
    padding: 1 2;
}
.dialog .question {
    margin-bottom: 1;
}
.dialog .hint {
    color: $text-muted;
    margin-bottom: 1;
}
.dialog Horizontal {
    height: auto;
    align-horizontal: right;
}
.dialog Button {
    margin-left: 2;
}
"""


class ConfirmScreen(ConsoleModal[bool]):
    """Asks one question; dismisses with True (yes) or False (no)."""

    DEFAULT_CSS = "ConfirmScreen { align: center middle; }" + DIALOG_CSS
    KEYS: ClassVar[list[KeySpec]] = [
        ("y,j", "answer(True)", "confirm.yes", True),
        ("n,escape", "answer(False)", "confirm.no", True),
    ]

    def __init__(self, question: Text) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question", markup=False)
            with Horizontal():
                yield Button(t("confirm.no"), id="no")
                yield Button(t("confirm.yes"), id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def relabel(self) -> None:
        if self.children:
            self.query_one("#no", Button).label = t("confirm.no")
            self.query_one("#yes", Button).label = t("confirm.yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)


class RemoveScreen(ConsoleModal[RemoveChoice | None]):
    """Remove someone, remove and bar them, or cancel (None)."""

    DEFAULT_CSS = "RemoveScreen { align: center middle; }" + DIALOG_CSS
    KEYS: ClassVar[list[KeySpec]] = [
        ("y,j", "answer('remove')", "confirm.remove_only", True),
        ("b", "answer('bar')", "confirm.remove_bar", True),
        ("n,escape", "answer(None)", "confirm.cancel", True),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.person = name
        """The name as the server sent it (data, shown as text)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(sentence("confirm.remove", name=self.person), classes="question")
            yield Static(t("confirm.remove_hint"), classes="hint")
            with Horizontal():
                yield Button(t("confirm.cancel"), id="cancel")
                yield Button(t("confirm.remove_only"), id="remove", variant="warning")
                yield Button(t("confirm.remove_bar"), id="bar", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_answer(self, choice: RemoveChoice | None) -> None:
        self.dismiss(choice)

    @on(Button.Pressed, "#remove")
    def _remove(self) -> None:
        self.dismiss("remove")

    @on(Button.Pressed, "#bar")
    def _bar(self) -> None:
        self.dismiss("bar")

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
