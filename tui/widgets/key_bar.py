"""The key bar at the bottom: every key the leader can press right now, with its meaning.

Textual's `Footer` is a single line that scrolls sideways, so on the room screen most
actions would be hidden. The console promises that every action is visible, so this
bar wraps onto as many lines as it needs. It follows the screen's active bindings
(focus changes, language switch) like `Footer` does, and translates each binding's
description (a text key, see `tui.screens.base`) when it draws.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.i18n import label


class KeyBar(Static):
    """All shown bindings of the screen, wrapped over several lines."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: auto;
        width: 100%;
        padding: 0 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.refresh_keys()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: Any) -> None:
        self.refresh_keys()

    def on_resize(self) -> None:
        self.refresh_keys()

    def refresh_keys(self) -> None:
        """Draws the keys again from the screen's active bindings, packed into lines."""
        items: list[tuple[bool, Text]] = []
        seen: set[tuple[str, str]] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not binding.description:
                continue
            ident = (binding.action, binding.description)
            if ident in seen:
                continue
            seen.add(ident)
            item = Text()
            item.append(f" {self.app.get_key_display(binding)} ", style="bold reverse")
            item.append(f" {label(binding.description)}")
            items.append((binding.action == "quit", item))
        width = max(20, (self.size.width or self.app.size.width) - 2)
        text = Text(no_wrap=True, overflow="crop")
        used = 0
        # Quitting stands last, after the keys of the screen, wherever Textual merged it.
        for _quit, item in sorted(items, key=lambda pair: pair[0]):
            if used and used + 2 + item.cell_len > width:
                text.append("\n")
                used = 0
            elif used:
                text.append("  ")
                used += 2
            text.append_text(item)
            used += item.cell_len
        self.update(text)
