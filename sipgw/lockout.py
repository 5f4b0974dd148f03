"""Lockout of PIN guessing, per caller id, per source address and per dialled number.

Every wrong PIN counts against three keys: the caller's number (when it sent one), the
address the INVITE came from, and the number that was dialled (the gateway's closest
notion of "the room" before a PIN is known: a room's PIN is entered at one of the
dial-in numbers, and the server additionally limits per PIN). Each kind of key has
its own threshold, because a trunk carries many honest callers from one address.

Past a threshold the key is locked for `lockout_seconds`, doubling with every further
lockout of the same key (capped at a day). Keys are stored as keyed hashes with a key
that lives only in this process's memory, so the table never holds a phone number or
an address in the clear. Entries expire, so the table cannot grow without bound.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_LOCK_SECONDS = 24 * 3600


@dataclass
class _Entry:
    failures: int = 0
    strikes: int = 0
    locked_until: float = 0.0
    touched: float = 0.0


@dataclass(frozen=True)
class LockKey:
    """One hashed key and the number of failures that locks it."""

    digest: bytes
    threshold: int


def pins_equal(given: str, expected: str) -> bool:
    """Constant-time PIN comparison (for any PIN the gateway itself checks)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Lockout:
    """Counts wrong PINs and answers how long a caller must still wait."""

    def __init__(
        self,
        tries: int,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        source_factor: int = 10,
        number_factor: int = 30,
    ) -> None:
        self.tries = tries
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._source_factor = source_factor
        self._number_factor = number_factor
        self._secret = secrets.token_bytes(32)
        self._entries: dict[bytes, _Entry] = {}

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def keys(self, caller: str, source: str, dialled: str) -> list[LockKey]:
        """The keys a call's wrong PINs count against (anonymous callers: no caller key)."""
        out = [
            LockKey(self._digest("source", source), self.tries * self._source_factor),
            LockKey(self._digest("dialled", dialled), self.tries * self._number_factor),
        ]
        if caller:
            out.insert(0, LockKey(self._digest("caller", caller), self.tries))
        return out

    def retry_after(self, keys: Iterable[LockKey]) -> float:
        """Seconds until none of `keys` is locked (0 when the caller may try now)."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            entry = self._entries.get(key.digest)
            if entry is not None and entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
        return wait

    def failed(self, keys: Iterable[LockKey]) -> float:
        """Counts one wrong PIN; returns the resulting wait (0 if not locked)."""
        now = self._clock()
        self._expire(now)
        for key in keys:
            entry = self._entries.setdefault(key.digest, _Entry())
            entry.touched = now
            entry.failures += 1
            if entry.failures >= key.threshold:
                entry.failures = 0
                entry.strikes += 1
                seconds = min(self.lockout_seconds * 2 ** (entry.strikes - 1), MAX_LOCK_SECONDS)
                entry.locked_until = now + seconds
                log.info("a dial-in key is locked for %d s (strike %d)", seconds, entry.strikes)
        return self.retry_after(keys)

    def lock(self, keys: Iterable[LockKey], seconds: float) -> None:
        """Locks `keys` for at least `seconds` (the server said `rate_limited`)."""
        now = self._clock()
        for key in keys:
            entry = self._entries.setdefault(key.digest, _Entry())
            entry.touched = now
            entry.locked_until = max(entry.locked_until, now + seconds)

    def succeeded(self, keys: Iterable[LockKey]) -> None:
        """A right PIN clears the failure count of the caller's keys (not the strikes)."""
        for key in keys:
            entry = self._entries.get(key.digest)
            if entry is not None:
                entry.failures = 0

    def _expire(self, now: float) -> None:
        if len(self._entries) < 1024:
            return
        horizon = MAX_LOCK_SECONDS + self.lockout_seconds
        stale = [
            d
            for d, e in self._entries.items()
            if e.locked_until < now and now - e.touched > min(horizon, 3600)
        ]
        for digest in stale:
            del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)
