"""Rate limits for secrets (group passwords, room passwords, gateway secret, PINs).

Each failed attempt counts against every key it names (the connection, the source
address, ...). A key with too many failures inside the window is locked for a while;
while any of its keys is locked, an attempt is refused before the secret is even
looked at, so a guesser learns nothing from timing or answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
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

    def failed(self, keys: Iterable[tuple[str, str]], scale: int = 1) -> None:
        """Records a failure; `scale` raises the allowance for shared keys (a gateway)."""
        now = self._clock()
        for key in keys:
            bucket = self._buckets.setdefault(key, _Bucket())
            bucket.failures = [t for t in bucket.failures if now - t < self.window]
            bucket.failures.append(now)
            if len(bucket.failures) >= self.attempts * scale:
                bucket.locked_until = now + self.lockout
                bucket.failures.clear()
        self._prune(now)

    def succeeded(self, keys: Iterable[tuple[str, str]]) -> None:
        """A right secret clears the connection's own failures (not the address's)."""
        for key in keys:
            if key[0] == "conn":
                self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        if len(self._buckets) < 10000:
            return
        for key in [
            k
            for k, b in self._buckets.items()
            if b.locked_until <= now and all(now - t >= self.window for t in b.failures)
        ]:
            del self._buckets[key]
