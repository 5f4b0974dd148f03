"""Keyed pseudonyms for support correlation, with a key that never leaves memory.

When a volunteer reports "my connection dropped at eight", an operator wants to follow
one connection through the log without the log naming anyone. `pseudonym(value)` gives
`ps_` + 10 hex characters: HMAC-SHA256 of the value under a random key that

- is created with `secrets` when first needed and held only in this process's memory
  (never written to disk, never logged, not in any config);
- is replaced by a fresh random key at every UTC day change, so pseudonyms of
  different days cannot be linked, and after a restart nothing links to before.

The same value gives the same pseudonym within one day and one process; without the key
(which is gone by tomorrow) nobody can go from a pseudonym back to the value, even by
trying every IP address or phone number.

Deutsch: Pseudonyme (`ps_…`) erlauben es, im Protokoll eine Verbindung zu verfolgen,
ohne dass dort eine IP-Adresse oder ein Name steht. Der Schlüssel liegt nur im
Arbeitsspeicher und wird täglich neu gewürfelt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

PREFIX = "ps_"
HEX_CHARS = 10
KEY_BYTES = 32
SECONDS_PER_DAY = 86400


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms under a daily-rotated in-memory key."""

    __slots__ = ("_clock", "_day", "_key", "_lock")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._day: int | None = None
        self._key = b""

    def __repr__(self) -> str:  # never show the key, not even in a traceback
        return f"<Pseudonymizer day={self._day}>"

    def _current_key(self) -> bytes:
        day = int(self._clock() // SECONDS_PER_DAY)
        with self._lock:
            if day != self._day:
                self._key = secrets.token_bytes(KEY_BYTES)
                self._day = day
            return self._key

    def rotate(self) -> None:
        """Forgets the current key now (e.g. after an incident); a new one is drawn."""
        with self._lock:
            self._day = None
            self._key = b""

    def __call__(self, value: str | bytes) -> str:
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        digest = hmac.new(self._current_key(), data, hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_CHARS]


_default = Pseudonymizer()


def pseudonym(value: str | bytes) -> str:
    """`ps_` + 10 hex: a keyed, daily-changing pseudonym of `value` for log correlation."""
    return _default(value)


def rotate_key() -> None:
    """Drops today's key for the process-wide pseudonymizer."""
    _default.rotate()
