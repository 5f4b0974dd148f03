"""Lockout keys: what the server counts a caller's wrong PINs against.

The lockout itself lives in one place, the server's secret check (`dial_in`, see
docs/protocol.md): per call, per caller, per source address and per dialled number,
so gateway processes hold no shared state and the lockout holds across processes and
machines alike. The gateway only names the keys, as keyed hashes (HMAC-SHA-256 under
a key derived from the `[gateway] secret` every gateway of a server shares): the
server never learns a phone number or a caller's address, and every gateway process
names the same caller the same way.

A caller who withholds its number still gets a caller key: the source address, the
dialled number and a fingerprint of its INVITE (what its phone says about itself),
so that hiding the number does not buy fresh tries on every call.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

KEY_HEX = 32
"""Hex digits of one key (128 bits)."""


@dataclass(frozen=True)
class CallerKeys:
    """The keyed hashes a call's wrong PINs count against (hex, never the values)."""

    caller: str
    source: str
    dialled: str

    def message_fields(self) -> dict[str, str]:
        """The `dial_in` fields that carry them."""
        return {"caller_key": self.caller, "source_key": self.source, "dialled_key": self.dialled}


def caller_keys(
    secret: str, number: str, source: str, dialled: str, fingerprint: str = ""
) -> CallerKeys:
    """The keys of one call: `number` is the caller's digits ('' when withheld)."""
    key = hashlib.sha256(b"kreis dial-in lockout\0" + secret.encode()).digest()

    def digest(kind: str, value: str) -> str:
        return hmac.new(key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:KEY_HEX]

    if number:
        caller = digest("caller", number)
    else:
        caller = digest("withheld", f"{source}\0{dialled}\0{fingerprint}")
    return CallerKeys(caller, digest("source", source), digest("dialled", dialled))


def pins_equal(given: str, expected: str) -> bool:
    """Constant-time PIN comparison (for any PIN the gateway itself checks)."""
    return hmac.compare_digest(given.encode(), expected.encode())
