"""The room chat: a log of messages and a line to write to everyone.

Every line is plain `Text` (names and messages are never markup), cleaned with
`tui.text.plain` so that an escape sequence in a message cannot act on the terminal,
and a line break inside a message is indented so that it cannot fake a message from
someone else. Lobby chat (from someone still waiting) and private
messages are marked as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, RichLog

from tui.i18n import t
from tui.session import CHAT_KEPT
from tui.text import plain

CONTINUATION = "  ┆ "
"""Starts every further line of a message that has line breaks."""


def chat_line(msg: dict[str, Any], names: dict[str, str], utc: bool = False) -> Text:
    """One chat message as a line: time, who (and to whom), text."""
    ts = msg.get("ts")
    stamp = ""
    if isinstance(ts, int | float):
        stamp = time.strftime("%H:%M", time.gmtime(ts) if utc else time.localtime(ts))
    name = plain(msg.get("name") or "")
    # lobby=True with `to` set is a leader's message to someone waiting, not from them
    from_lobby = bool(msg.get("lobby")) and not msg.get("to")
    who = t("room.from_lobby", name=name) if from_lobby else name
    line = Text()
    if stamp:
        line.append(stamp + " ", style="dim")
    line.append(who, style="bold")
    to = msg.get("to")
    if to:
        line.append(" → " + t("room.to", name=plain(names.get(str(to), "?"))), style="italic")
    line.append(": ")
    # The server keeps line breaks in a message; each further line is indented, so that
    # it cannot pass for a message of its own ("12:01 Leitung: …").
    first, *more = str(msg.get("text") or "").split("\n")
    line.append(plain(first))
    for part in more:
        line.append("\n" + CONTINUATION + plain(part))
    return line


class ChatPanel(Vertical):
    """Chat log plus an input line; Enter posts `ChatPanel.Send`."""

    DEFAULT_CSS = """
    ChatPanel {
        height: 12;
        border: round $primary;
        padding: 0 1;
    }
    ChatPanel > RichLog {
        height: 1fr;
        background: $surface;
    }
    ChatPanel > Input {
        height: 3;
    }
    """

    @dataclass
    class Send(Message):
        """The leader wrote a chat line to the whole room."""

        text: str
        """What to send (already trimmed, not empty)."""

    def __init__(self, *, id: str | None = None, utc: bool = False) -> None:
        super().__init__(id=id)
        self._written = 0
        self.utc = utc
        """Show times in UTC (snapshots)."""

    def compose(self) -> ComposeResult:
        yield RichLog(id="chat-log", wrap=True, markup=False, highlight=False, max_lines=CHAT_KEPT)
        yield Input(id="chat-input")

    def on_mount(self) -> None:
        self.relabel()

    def relabel(self) -> None:
        self.border_title = t("room.chat")
        self.query_one("#chat-input", Input).placeholder = t("room.chat_placeholder")

    def show(self, messages: list[dict[str, Any]], names: dict[str, str], total: int) -> None:
        """Shows the chat; `total` counts every message ever received, so only the new
        ones are appended (the leader's scroll position stays where it is)."""
        log = self.query_one("#chat-log", RichLog)
        new = total - self._written
        if new <= 0 and self._written:
            return
        if not self._written or new > len(messages):
            log.clear()
            new = len(messages)
        for msg in messages[len(messages) - new :]:
            log.write(chat_line(msg, names, self.utc))
        self._written = total

    def redraw(self, messages: list[dict[str, Any]], names: dict[str, str], total: int) -> None:
        """Shows the whole chat again (after a language switch)."""
        self._written = 0
        self.query_one("#chat-log", RichLog).clear()
        self.show(messages, names, total)

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if text:
            self.post_message(self.Send(text))
