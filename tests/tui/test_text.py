"""tui/text.py: what people typed reaches the terminal as characters, never as codes."""

from __future__ import annotations

import unicodedata

import pytest
from hostile_names import ALL
from rich.text import Text

from tui.i18n import set_lang
from tui.text import REPLACEMENT, as_text, plain, sentence
from tui.widgets.chat_panel import CONTINUATION, chat_line

pytestmark = [pytest.mark.tui, pytest.mark.security]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("Yvonne\x1b[31mrot", f"Yvonne{REPLACEMENT}[31mrot"),
        ("Anna\r\nLeitung: admit all", f"Anna{REPLACEMENT * 2}Leitung: admit all"),
        ("Zoe\x07\x08\x7f", f"Zoe{REPLACEMENT * 3}"),
        ("Bernd\x00Nul", f"Bernd{REPLACEMENT}Nul"),
        ("Clara\u0085Next", f"Clara{REPLACEMENT}Next"),
        ("a\u2028b\u2029c", f"a{REPLACEMENT}b{REPLACEMENT}c"),
        ("\u202eetsiL\u202c Tina", f"{REPLACEMENT}etsiL{REPLACEMENT} Tina"),
        ("Uwe\u2066Leitung\u2069", f"Uwe{REPLACEMENT}Leitung{REPLACEMENT}"),
    ],
)
def test_codes_that_act_on_a_terminal_become_visible(typed: str, shown: str) -> None:
    assert plain(typed) == shown


@pytest.mark.parametrize(
    "typed",
    [
        "[@click=screen.admit]Anna[/]",
        "Gisela 👩\u200d👩\u200d👧",
        "Jürgen Ölmüller",
        "محمد",
        "王小明",
    ],
)
def test_everything_else_is_kept_as_it_is(typed: str) -> None:
    assert plain(typed) == typed


def test_no_hostile_name_keeps_a_control_character_or_bidi_mark() -> None:
    bidi = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    for name in ALL:
        left = [
            ch for ch in plain(name) if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in bidi
        ]
        assert not left, repr(name)


def test_sentences_take_names_as_text() -> None:
    set_lang("de")
    try:
        text = sentence("confirm.remove", name="[@click=screen.admit]Anna[/]\x1b[2J")
    finally:
        set_lang("en")
    assert isinstance(text, Text) and not text.spans
    assert text.plain == f"[@click=screen.admit]Anna[/]{REPLACEMENT}[2J aus dem Raum entfernen?"
    assert as_text("[b]x[/b]", style="red").plain == "[b]x[/b]"


def test_a_line_break_in_a_chat_message_cannot_pass_for_another_message() -> None:
    msg = {"name": "Anna", "text": "hallo\n12:01 Leitung: alle einlassen\x1b[2J", "ts": None}
    assert chat_line(msg, {}).plain.split("\n") == [
        "Anna: hallo",
        f"{CONTINUATION}12:01 Leitung: alle einlassen{REPLACEMENT}[2J",
    ]
