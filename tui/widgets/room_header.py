"""The room header: which room, its address, its settings and the connection state.

The leader should see at a glance whether the lobby is on, the room locked or
password-protected, E2EE on, and how to dial in (numbers and PIN).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.i18n import t
from tui.text import plain


class RoomHeader(Static):
    """Two or three lines at the top of the room screen."""

    DEFAULT_CSS = """
    RoomHeader {
        height: auto;
        padding: 0 1;
        background: $boost;
        border-bottom: solid $primary;
    }
    """

    def show(self, room: Any, status: str) -> None:
        """Draws `room` (a RoomView or None) and the connection `status`."""
        text = Text()
        if room is None:
            self.update(text)
            return
        text.append(f"{t('hdr.room')}: ", style="bold")
        # Slug and address come from the server: appended as text, never markup.
        text.append(plain(room.slug), style="bold")
        text.append("   ")
        text.append(plain(room.url), style="underline")
        text.append("   ")
        if status == "reconnecting":
            text.append(t("conn.reconnecting"), style="bold reverse red")
        else:
            text.append(t("conn.online") if status == "online" else plain(status), style="green")
        text.append("\n")
        settings: dict[str, bool] = room.settings
        for key, label in (
            ("lobby", "hdr.lobby"),
            ("locked", "hdr.locked"),
            ("has_password", "hdr.password"),
            ("e2ee", "hdr.e2ee"),
            ("dial_in", "hdr.dial_in"),
        ):
            on = bool(settings.get(key))
            text.append(f"{t(label)}: ", style="bold")
            text.append(t("on") if on else t("off"), style="green" if on else "dim")
            text.append("   ")
        if settings.get("dial_in") and room.dial_in_pin:
            numbers = ", ".join(plain(n) for n in room.dial_in_numbers) or "?"
            text.append("\n")
            text.append(
                t("hdr.dial_in_detail", numbers=numbers, pin=plain(room.dial_in_pin)),
                style="bold",
            )
        self.update(text)
