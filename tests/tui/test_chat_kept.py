"""The console keeps at most `CHAT_KEPT` chat lines, however long the meeting runs.

Both places that hold chat are checked: the session's `RoomView` (what arrived) and the
chat panel's log (what is on screen), each fed more than it may keep.
"""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import RichLog

from tui.session import CHAT_KEPT, ConsoleSession, RoomView
from tui.widgets.chat_panel import ChatPanel

MORE = CHAT_KEPT + 37


def chat(n: int) -> dict[str, Any]:
    return {"type": "chat", "room": "r", "from": "p1", "name": "Wolke", "text": f"Zeile {n}",
            "ts": 1_764_000_000 + n}  # fmt: skip


def test_session_keeps_the_newest_chat_kept_messages() -> None:
    session = ConsoleSession("http://127.0.0.1:1")
    session.room = RoomView("r")
    for n in range(MORE):
        session.got_chat(chat(n))
    assert len(session.room.chat) == CHAT_KEPT
    assert session.room.chat[0]["text"] == f"Zeile {MORE - CHAT_KEPT}"
    assert session.room.chat_total == MORE


class _ChatOnly(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatPanel(id="chat", utc=True)


async def test_chat_panel_shows_at_most_chat_kept_lines() -> None:
    app = _ChatOnly()
    async with app.run_test(size=(200, 40)) as pilot:
        panel = app.query_one(ChatPanel)
        for n in range(MORE):  # one message at a time, as they arrive
            panel.show([chat(n)], {}, n + 1)
        await pilot.pause()
        lines = app.query_one("#chat-log", RichLog).lines
        assert 0 < len(lines) <= CHAT_KEPT
        assert f"Zeile {MORE - 1}" in lines[-1].text
