"""What every console screen shares: key bindings in the current language.

Textual reads `BINDINGS` once per class; the console switches language at runtime, so
screens list their keys as `KEYS` (keys, action, text key, shown in the footer) and the
bindings map is rebuilt from them whenever the language changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, cast

from textual.binding import Binding, BindingsMap
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

from tui.events import SessionEvent
from tui.i18n import t

if TYPE_CHECKING:
    from tui.app import KreisConsole

KeySpec = tuple[str, str, str, bool]
"""(keys, action, i18n key of the description, shown in the footer)."""

ResultT = TypeVar("ResultT")


def translated_bindings(specs: list[KeySpec]) -> BindingsMap:
    """A bindings map with descriptions in the current language."""
    return BindingsMap(
        [Binding(keys, action, t(text), show=show) for keys, action, text, show in specs]
    )


def apply_keys(node: DOMNode, specs: list[KeySpec]) -> None:
    """Replaces `node`'s bindings with `specs` in the current language."""
    node._bindings = translated_bindings(specs)


class Translated:
    """Mixin: `retranslate()` relabels the screen after a language switch."""

    KEYS: ClassVar[list[KeySpec]] = []

    def retranslate(self) -> None:
        assert isinstance(self, Screen)
        apply_keys(self, self.KEYS)
        self.relabel()
        if self.is_mounted:
            self.refresh_bindings()

    def relabel(self) -> None:
        """Sets every visible text again (override)."""

    def on_session(self, event: SessionEvent) -> None:
        """A session event, forwarded by the app to every screen on the stack."""

    @property
    def console(self) -> KreisConsole:
        assert isinstance(self, DOMNode)
        return cast("KreisConsole", self.app)


class ConsoleScreen(Translated, Screen[None]):
    """A full screen of the console."""

    def __init__(self) -> None:
        super().__init__()
        apply_keys(self, self.KEYS)


class ConsoleModal(Translated, ModalScreen[ResultT], Generic[ResultT]):
    """A dialog of the console that answers with a `ResultT`."""

    def __init__(self) -> None:
        super().__init__()
        apply_keys(self, self.KEYS)
