"""Display names and room slugs: cleaning, validation, warnings and suggestions."""

from __future__ import annotations

import re
import secrets
import unicodedata

MAX_NAME = 40
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,62})[a-z0-9]$")
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
    """The display name is empty or too long after cleaning."""


def clean_name(raw: str) -> str:
    """A display name as Kreis keeps it: NFC, no control/format characters, single
    spaces, trimmed, at most 40 characters. Raises NameError_ when nothing usable is left
    or it is longer than the limit."""
    text = unicodedata.normalize("NFC", raw)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    text = " ".join(text.split())
    if not text or len(text) > MAX_NAME:
        raise NameError_(text)
    return text


def slug_problem(slug: str) -> str | None:
    """`bad_slug` or `reserved_slug` when the slug breaks the rules, else None."""
    if not SLUG_RE.match(slug) or "--" in slug:
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
