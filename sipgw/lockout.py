"""Lockout of PIN guessing, per caller id, per source address and per dialled number.

Every wrong PIN counts against three keys: the caller's number (when it sent one), the
address the INVITE came from, and the number that was dialled (the gateway's closest
notion of "the room" before a PIN is known: a room's PIN is entered at one of the
dial-in numbers, and the server additionally limits per PIN). Each kind of key has
its own threshold, because a trunk carries many honest callers from one address.

Past a threshold the key is locked for `lockout_seconds`, doubling with every further
lockout of the same key (capped at a day). Keys are stored as keyed hashes with a key
that lives only in memory, so the table never holds a phone number or an address in
the clear. Entries expire, so the table cannot grow without bound.

With several gateway processes (`[sip] processes`), the supervisor owns the one table
and the backends ask it through `RemoteLockout`: otherwise an attacker would get a
fresh set of tries in every process. Backends hash the keys themselves with the
supervisor's hashing key, so only digests cross the process boundary.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

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


class LockoutBook(Protocol):
    """What a call session needs of a lockout table, local or in the supervisor."""

    def keys(self, caller: str, source: str, dialled: str) -> list[LockKey]: ...

    async def check(self, keys: list[LockKey]) -> float:
        """Seconds until none of `keys` is locked (0: the caller may try now)."""
        ...

    async def fail(self, keys: list[LockKey]) -> float:
        """Counts one wrong PIN; returns the resulting wait (0 if not locked)."""
        ...

    async def hold(self, keys: list[LockKey], seconds: float) -> None:
        """Locks `keys` for at least `seconds`."""
        ...

    async def succeed(self, keys: list[LockKey]) -> None:
        """A right PIN: clears the failure counts of `keys`."""
        ...


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
        secret: bytes | None = None,
    ) -> None:
        self.tries = tries
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._source_factor = source_factor
        self._number_factor = number_factor
        self._secret = secret or secrets.token_bytes(32)
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

    # ------------------------------------------------ LockoutBook (one process)

    async def check(self, keys: list[LockKey]) -> float:
        return self.retry_after(keys)

    async def fail(self, keys: list[LockKey]) -> float:
        return self.failed(keys)

    async def hold(self, keys: list[LockKey], seconds: float) -> None:
        self.lock(keys, seconds)

    async def succeed(self, keys: list[LockKey]) -> None:
        self.succeeded(keys)

    # ------------------------------------------------ the supervisor's side

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answers one `RemoteLockout` request (`op`, `keys`, `seconds`) with `wait`.

        Raises ValueError for a malformed request.
        """
        op = request.get("op")
        raw = request.get("keys")
        if not isinstance(raw, list) or len(raw) > 8:
            raise ValueError("bad keys")
        keys = [LockKey(bytes.fromhex(str(d)), max(1, int(t))) for d, t in raw]
        if op == "check":
            return {"wait": self.retry_after(keys)}
        if op == "fail":
            return {"wait": self.failed(keys)}
        if op == "hold":
            self.lock(keys, min(float(request.get("seconds", 0)), MAX_LOCK_SECONDS))
            return {"wait": self.retry_after(keys)}
        if op == "succeed":
            self.succeeded(keys)
            return {"wait": 0.0}
        raise ValueError("bad op")


Ask = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Sends one request to the supervisor and returns its answer."""


class RemoteLockout:
    """A backend's view of the supervisor's lockout table (a `LockoutBook`).

    `hashing` is a local `Lockout` made with the supervisor's hashing key and the same
    thresholds; it only computes keys, its own table stays empty. If the supervisor
    cannot be asked, callers are treated as locked: failing closed costs an honest
    caller a retry, failing open would hand an attacker unlimited tries.
    """

    def __init__(self, hashing: Lockout, ask: Ask) -> None:
        self._hashing = hashing
        self._ask = ask

    def keys(self, caller: str, source: str, dialled: str) -> list[LockKey]:
        return self._hashing.keys(caller, source, dialled)

    async def _call(self, op: str, keys: list[LockKey], seconds: float = 0.0) -> float:
        request = {
            "op": op,
            "keys": [[k.digest.hex(), k.threshold] for k in keys],
            "seconds": seconds,
        }
        try:
            reply = await self._ask(request)
            return float(reply["wait"])
        except Exception:
            log.warning("the shared lockout could not be asked; treating the caller as locked")
            return float(self._hashing.lockout_seconds or 1)

    async def check(self, keys: list[LockKey]) -> float:
        return await self._call("check", keys)

    async def fail(self, keys: list[LockKey]) -> float:
        return await self._call("fail", keys)

    async def hold(self, keys: list[LockKey], seconds: float) -> None:
        await self._call("hold", keys, seconds)

    async def succeed(self, keys: list[LockKey]) -> None:
        await self._call("succeed", keys)
