"""The help screen: every action in plain words, for leaders who are not technical.

Opened with ? or F1 from anywhere; Escape (or ? again) closes it. It is one scrollable
page so that it reads like a short manual.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.i18n import t
from tui.screens.base import ConsoleScreen, KeySpec
from tui.widgets.key_bar import KeyBar

ROOMS_TOPICS = ["help.open", "help.new", "help.refresh", "help.copy"]
ROOM_TOPICS = [
    "help.lobby_focus",
    "help.admit",
    "help.deny",
    "help.admit_all",
    "help.whisper",
    "help.mute",
    "help.mute_now",
    "help.mute_all",
    "help.lower_hand",
    "help.remove",
    "help.promote",
    "help.lock",
    "help.lobby",
    "help.password",
    "help.e2ee",
    "help.dial_in",
    "help.end",
    "help.chat",
    "help.copy",
    "help.back",
]


def help_text() -> Text:
    """The whole help page in the current language."""
    text = Text()
    text.append(t("help.title") + "\n\n", style="bold underline")
    text.append(t("help.general") + "\n\n")
    text.append(t("help.rooms") + "\n", style="bold")
    for key in ROOMS_TOPICS:
        text.append("  • " + t(key) + "\n")
    text.append("\n" + t("help.room") + "\n", style="bold")
    for key in ROOM_TOPICS:
        text.append("  • " + t(key) + "\n")
    text.append("\n" + t("help.close"), style="italic")
    return text


class HelpScreen(ConsoleScreen):
    """The manual, one page."""

    DEFAULT_CSS = """
    HelpScreen > VerticalScroll {
        padding: 1 2;
    }
    """
    KEYS: ClassVar[list[KeySpec]] = [
        ("escape,question_mark,f1", "close", "key.back", True),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="help-text")
        yield KeyBar()

    def on_mount(self) -> None:
        self.relabel()

    def relabel(self) -> None:
        if self.children:
            self.query_one("#help-text", Static).update(help_text())

    def action_close(self) -> None:
        self.dismiss()
