"""What people typed, and what the server sent, made safe to show in the console.

Names, chat lines, room addresses, invite links, the group name and the server's own
error sentences are data. Textual renders markup in `notify()`, `Static` and
`DataTable` string cells by default, so `[@click=screen.admit]Anna[/]` would become a
button that admits its author, and `[/]` would crash the console. Everything the
console shows that it did not write itself goes through this module: `plain()` for a
string, `as_text()` for a `rich.text.Text`, and `sentence()` for one of our translated
sentences with someone's text filled in. None of them ever parses markup.

The server already cleans display names, but the console does not rely on it: chat
lines are not cleaned there, and a console may talk to an older or a hostile server.
"""

from __future__ import annotations

import unicodedata

from rich.text import Text

from tui.i18n import t

REPLACEMENT = "\ufffd"
"""Shown instead of a character that would act on the terminal (visible on purpose)."""

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Marks that reorder what follows them, so that a name can seem to say something else."""


def _acts_on_terminal(ch: str) -> bool:
    # Cc: C0/C1 controls (ESC, BEL, CR, LF, NUL, DEL, NEL…); Zl/Zp: line and paragraph
    # separators, which start a new line inside one table cell or chat line.
    return ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def plain(value: object) -> str:
    """`value` as a one-line string fit for the terminal: every control character, line
    break and bidi override is replaced by U+FFFD. Nothing else changes."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and not any(ch in _BIDI_CONTROLS for ch in text):
        return text  # the common case, without a walk through unicodedata
    return "".join(REPLACEMENT if _acts_on_terminal(ch) else ch for ch in text)


def as_text(value: object, style: str = "") -> Text:
    """`value` as a `Text` (never markup), cleaned with `plain()`."""
    return Text(plain(value), style=style)


def sentence(key: str, style: str = "", **values: object) -> Text:
    """Our translated sentence `key` with `values` (names, links, …) filled in as text.

    The sentences in tui/i18n.py hold no markup; the result is a `Text`, so neither they
    nor the values are ever parsed as markup.
    """
    return Text(t(key, **{name: plain(value) for name, value in values.items()}), style=style)
