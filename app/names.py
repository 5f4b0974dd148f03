"""Display names and room slugs: cleaning, validation, warnings and suggestions."""

from __future__ import annotations

import re
import secrets
import unicodedata

MAX_NAME = 40
SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,62})[a-z0-9]")
"""Matched with `fullmatch`: `$` would also accept a trailing newline."""
MAX_CHAT = 2000
MAX_LOBBY_CHAT = 500
RESERVED_NAMES = frozenset(
    {
        "leitung", "leitung (konsole)", "leader", "leader (console)", "moderator",
        "moderation", "kreis", "server", "system", "admin", "telefon", "phone",
    }
)  # fmt: skip
"""Labels Kreis itself shows (the leader, a console, a phone caller, the server): a guest
may not take them, or a stranger could pass as the leader in the list and chat."""
_RESERVED_WORDS = frozenset(
    {"leitung", "leader", "moderator", "moderation", "admin", "coleitung", "coleader"}
)
"""Words of the leader's label: a name with one of them anywhere ("Anna (Leitung)",
"Co-Leitung Anna") could pass as the leader."""
_RESERVED_FIRST_WORDS = frozenset({"telefon", "phone"})
"""A name that starts like a phone caller's label ("Telefon …47") could pass as one."""
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "е": "e", "і": "i", "ї": "i", "о": "o", "р": "p", "с": "c", "у": "y",
        "х": "x", "ѕ": "s", "ј": "j", "ԁ": "d", "ɡ": "g", "ⅼ": "l", "ӏ": "l", "ι": "i",
        "ο": "o", "ν": "v", "τ": "t", "κ": "k", "ρ": "p", "α": "a", "ε": "e", "η": "n",
        "ı": "i", "ɪ": "i", "ʟ": "l", "ɴ": "n", "ᴇ": "e", "ᴛ": "t", "ᴜ": "u", "ɢ": "g",
        "0": "o", "1": "l", "3": "e",
    }
)  # fmt: skip
"""Latin look-alikes, only for comparing a name against the reserved labels."""
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")
"""Characters that are letters or symbols by category but render as nothing."""
_MAX_MARKS = 3
"""Combining marks kept on one base character ("Zalgo" text is cut down to this)."""
RESERVED_SLUGS = frozenset(
    {
        "ws", "static", "api", "healthz", "metrics", "admin", "login", "logout", "console",
        "favicon.ico", "robots.txt", "index", "index-html", "new", "assets", "leader",
        "leitung", "dial-in", "sip", "turn", "stun", "kreis", "help", "hilfe", "about",
        "debug", "test-hooks", "well-known",
    }
)  # fmt: skip
GUESSABLE = frozenset(
    {
        "test", "testen", "meeting", "treffen", "gruppe", "group", "raum", "room", "chat",
        "demo", "kreis", "circle", "montag", "dienstag", "mittwoch", "donnerstag", "freitag",
        "samstag", "sonntag", "monday", "tuesday", "wednesday", "thursday", "friday",
        "saturday", "sunday", "selbsthilfe", "shg", "verein", "club", "beratung", "abc",
        "aaa", "xyz", "qwertz", "qwerty", "hallo", "hello",
    }
)  # fmt: skip
_WORDS = (
    "ahorn", "birke", "buche", "eiche", "erle", "esche", "linde", "tanne", "ulme", "weide",
    "bach", "berg", "feld", "hain", "moor", "see", "tal", "wiese", "insel", "hafen",
    "ruhig", "hell", "klar", "mild", "sanft", "still", "warm", "weit", "leise", "frisch",
)  # fmt: skip


class NameError_(ValueError):
    """The display name is empty, blank when shown, or too long after cleaning."""


class ReservedName(NameError_):
    """The name is one of the labels Kreis shows for the leader, consoles or phones."""


def _visible_text(raw: str, keep_newlines: bool) -> str:
    """NFC; control, format (bidi, zero-width), surrogate, private and unassigned
    characters removed; blank-rendering letters removed; combining marks only on a
    base character and at most `_MAX_MARKS` of them; whitespace to single spaces
    (newlines kept, at most two in a row, when `keep_newlines`)."""
    out: list[str] = []
    marks = 0
    for ch in unicodedata.normalize("NFC", raw):
        category = unicodedata.category(ch)
        if keep_newlines and ch == "\n":
            out.append(ch)
            marks = 0
            continue
        if ch.isspace():
            out.append(" ")
            marks = 0
            continue
        if category in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in _BLANK_LETTERS:
            continue
        if category.startswith("M"):
            if not out or out[-1] in " \n" or marks >= _MAX_MARKS:
                continue
            marks += 1
        else:
            marks = 0
        out.append(ch)
    text = "".join(out)
    if not keep_newlines:
        return " ".join(text.split())
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _shows_something(text: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LNPS" for ch in text)


def clean_name(raw: str) -> str:
    """A display name as Kreis keeps it: see `_visible_text`, trimmed, at most 40
    characters, with something visible in it. Raises NameError_ when nothing visible
    is left or it is longer than the limit, ReservedName for the labels Kreis uses."""
    text = _visible_text(raw, keep_newlines=False)
    if not text or len(text) > MAX_NAME or not _shows_something(text):
        raise NameError_(text)
    if _reserved(text):
        raise ReservedName(text)
    return text


def _reserved(text: str) -> bool:
    """The name is a reserved label, has a word of the leader's label in it ("Leitung
    Anna", "Anna (Leitung)", "Co-Leitung Anna") or starts like a phone caller's label,
    also when spelt with look-alike letters or fullwidth/mathematical forms."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_LOOKALIKES)
    if folded in RESERVED_NAMES:
        return True
    words = [w for w in re.split(r"[^\w]+", folded) if w]
    joined = re.sub(r"[^\w]+", "", folded)  # "Co-Leitung", "co leader"
    if any(w in _RESERVED_WORDS for w in words) or any(
        joined.startswith(w) for w in ("coleitung", "coleader")
    ):
        return True
    return bool(words) and words[0] in _RESERVED_FIRST_WORDS


def clean_chat(raw: str, limit: int = MAX_CHAT) -> str | None:
    """A chat line cleaned like a name (newlines kept), or None when nothing visible is
    left or it is longer than `limit`."""
    text = _visible_text(raw, keep_newlines=True)
    if not text or len(text) > limit or not _shows_something(text):
        return None
    return text


def slug_problem(slug: str) -> str | None:
    """`bad_slug` or `reserved_slug` when the slug breaks the rules, else None."""
    if not SLUG_RE.fullmatch(slug) or "--" in slug:
        return "bad_slug"
    if slug in RESERVED_SLUGS:
        return "reserved_slug"
    return None


def slug_warning(slug: str) -> str | None:
    """`short` or `guessable` for slugs that are easy to find, else None."""
    plain = slug.replace("-", "")
    if slug in GUESSABLE or plain.isdigit() or plain in GUESSABLE:
        return "guessable"
    if len(slug) < 8:
        return "short"
    parts = slug.split("-")
    if all(p in GUESSABLE or p.isdigit() for p in parts):
        return "guessable"
    return None


def suggest_slug() -> str:
    """A random, readable, hard-to-guess slug such as `still-linde-4821`."""
    first = secrets.choice(_WORDS)
    second = secrets.choice([w for w in _WORDS if w != first])
    return f"{first}-{second}-{secrets.randbelow(9000) + 1000}"
