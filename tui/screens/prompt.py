"""A one-line question: the room password, or a message to a waiting guest.

`PromptScreen` is a `ModalScreen[str | None]`: Enter answers with the text (which may
be empty: for the password that means "remove it"), Escape with None. The question
is `Text` (a message prompt names the person), never markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from tui.i18n import t
from tui.screens.base import ConsoleModal, KeySpec


class PromptScreen(ConsoleModal[str | None]):
    """Asks for one line of text."""

    DEFAULT_CSS = """
    PromptScreen {
        align: center middle;
    }
    PromptScreen > Vertical {
        width: 72;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    PromptScreen .question {
        margin-bottom: 1;
    }
    PromptScreen Horizontal {
        height: auto;
        align-horizontal: right;
        margin-top: 1;
    }
    PromptScreen Button {
        margin-left: 2;
    }
    """
    KEYS: ClassVar[list[KeySpec]] = [("escape", "cancel", "confirm.cancel", True)]

    def __init__(
        self,
        question: Text,
        *,
        password: bool = False,
        max_length: int = 0,
        allow_empty: bool = True,
    ) -> None:
        super().__init__()
        self.question = question
        self.password = password
        self.max_length = max_length
        self.allow_empty = allow_empty

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="question", markup=False)
            yield Input(id="answer", password=self.password, max_length=self.max_length)
            with Horizontal():
                yield Button(t("confirm.cancel"), id="cancel")
                yield Button(t("confirm.ok"), id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#answer")
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        value = self.query_one("#answer", Input).value
        if value.strip() or self.allow_empty:
            self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
