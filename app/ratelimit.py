"""Rate limits: for secrets (group passwords, room passwords, gateway secret, PINs) and
for plain events (knocks, lobby chat) per connection and per source address.

`SecretLimiter`: each attempt counts against every key it names (the connection, the
source address, ...) *before* the secret is looked at, and is taken back only when the
secret was right. A burst of parallel attempts therefore gets no more evaluations than
the limit: the ones past it are refused while the first are still being checked. A key
with too many failures inside the window is locked for a while; while any of its keys
is locked, an attempt is refused before the secret is even looked at, so a guesser
learns nothing from timing or answers.

`EventLimiter`: at most N events per key inside a sliding window (no lockout).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class SecretLimiter:
    """Counts failed attempts per key, in memory only."""

    def __init__(
        self,
        attempts: int,
        window_seconds: float,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window_seconds
        self.lockout = lockout_seconds
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def retry_after(self, keys: Iterable[tuple[str, str]]) -> int:
        """Seconds until every key may try again (0 when an attempt is allowed now)."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket is not None and bucket.locked_until > now:
                wait = max(wait, bucket.locked_until - now)
        return int(wait + 0.999)

    def begin(
        self,
        keys: Iterable[tuple[str, str]],
        scale: int = 1,
        thresholds: Mapping[tuple[str, str], int] | None = None,
    ) -> float | None:
        """Counts one attempt as failed before it is evaluated and returns its stamp for
        `succeeded`; None when a key is locked (the attempt must not be evaluated).
        `scale` raises the allowance for shared keys (a gateway); `thresholds` sets it
        for single keys (a phone caller, a trunk, a dialled number)."""
        keys = list(keys)
        if self.retry_after(keys):
            return None
        now = self._clock()
        for key in keys:
            bucket = self._buckets.setdefault(key, _Bucket())
            bucket.failures = [t for t in bucket.failures if now - t < self.window]
            bucket.failures.append(now)
            limit = thresholds.get(key) if thresholds else None
            if len(bucket.failures) >= (limit or self.attempts * scale):
                bucket.locked_until = now + self.lockout
        self._prune(now)
        return now

    def succeeded(self, keys: Iterable[tuple[str, str]], stamp: float | None = None) -> None:
        """A right secret: takes back the attempt counted by `begin` (and a lock it
        caused), and clears the connection's own failures (not the address's)."""
        keys = list(keys)
        self.retract(keys, stamp)
        for key in keys:
            if key[0] == "conn":
                self._buckets.pop(key, None)

    def retract(self, keys: Iterable[tuple[str, str]], stamp: float | None) -> None:
        """Takes back the attempt counted by `begin` (it turned out not to be one)."""
        for key in keys:
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            if stamp is not None and stamp in bucket.failures:
                bucket.failures.remove(stamp)
                if bucket.locked_until == stamp + self.lockout:
                    bucket.locked_until = 0.0

    def _prune(self, now: float) -> None:
        if len(self._buckets) < 10000:
            return
        for key in [
            k
            for k, b in self._buckets.items()
            if b.locked_until <= now and all(now - t >= self.window for t in b.failures)
        ]:
            del self._buckets[key]


class EventLimiter:
    """At most `limit` events per key inside a sliding window, in memory only."""

    def __init__(
        self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._events: dict[tuple[str, str], list[float]] = {}

    def allow(self, keys: Iterable[tuple[str, str]]) -> int:
        """Counts one event against every key; 0 when it is allowed, else the seconds
        until the fullest key has room again (the event is then not counted)."""
        now = self._clock()
        keys = list(keys)
        wait = 0.0
        for key in keys:
            events = [t for t in self._events.get(key, ()) if now - t < self.window]
            self._events[key] = events
            if len(events) >= self.limit:
                wait = max(wait, events[0] + self.window - now)
        if wait:
            return int(wait + 0.999) or 1
        for key in keys:
            self._events[key].append(now)
        if len(self._events) > 10000:
            self._events = {
                k: v for k, v in self._events.items() if v and now - v[-1] < self.window
            }
        return 0
