"""What every console screen shares: key bindings in the current language.

Textual reads `BINDINGS` once per class, and the console switches language at runtime.
So screens list their keys as `KEYS` (keys, action, text key, shown in the key bar);
the bindings made from them carry the text *key* as their description, and the key bar
(`tui.widgets.key_bar`) translates it each time it draws. A language switch only asks
Textual to refresh the bindings; nothing of Textual's is replaced.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen

from tui.events import SessionEvent
from tui.session import ConsoleSession

KeySpec = tuple[str, str, str, bool]
"""(keys, action, i18n key of the description, shown in the footer)."""

ResultT = TypeVar("ResultT")


class ConsoleHost(Protocol):
    """What screens may use of the console app (`tui.app.KreisConsole`).

    Screens reach the app through this, so `tui.app` imports the screens and no screen
    imports `tui.app`.
    """

    session: ConsoleSession
    cursor_blink: bool
    live_refresh: bool
    fixed_clock: float | None

    def logged_in(self, server_url: str, group: str) -> None: ...

    def open_room(self) -> None: ...

    def left_room(self) -> None: ...


def key_bindings(specs: list[KeySpec]) -> list[BindingType]:
    """Textual bindings for `specs`; each description is the text key, translated when shown."""
    return [Binding(keys, action, text, show=show) for keys, action, text, show in specs]


class Translated:
    """Mixin: `KEYS` become the class's bindings; `retranslate()` relabels after F2."""

    KEYS: ClassVar[list[KeySpec]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Before Textual's own __init_subclass__ (next in the MRO) merges BINDINGS.
        if "KEYS" in cls.__dict__:
            cls.BINDINGS = key_bindings(cls.KEYS)  # type: ignore[attr-defined]
        super().__init_subclass__(**kwargs)

    def retranslate(self) -> None:
        assert isinstance(self, Screen)
        self.relabel()
        if self.is_mounted:
            self.refresh_bindings()

    def relabel(self) -> None:
        """Sets every visible text again (override)."""

    def on_session(self, event: SessionEvent) -> None:
        """A session event, forwarded by the app to every screen on the stack."""

    @property
    def console(self) -> ConsoleHost:
        assert isinstance(self, DOMNode)
        return cast(ConsoleHost, self.app)


class ConsoleScreen(Translated, Screen[None]):
    """A full screen of the console."""


class ConsoleModal(Translated, ModalScreen[ResultT], Generic[ResultT]):
    """A dialog of the console that answers with a `ResultT`."""
