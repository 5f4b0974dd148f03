"""Group passwords: memory-hard hashing with scrypt, checking, and generating.

Only the hash is ever stored (in the TOML config), in the self-describing format
`scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>` so that the cost can be raised later
without breaking stored hashes. Hashing takes a noticeable fraction of a second and
about 32 MiB of memory on purpose: the server should call `verify_password` in a
thread (`loop.run_in_executor`) so that it does not block the event loop.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import secrets
import unicodedata

log = logging.getLogger(__name__)

SCRYPT_N = 2**15
"""CPU/memory cost; 128 * n * r bytes = 32 MiB of memory per hash."""
SCRYPT_R = 8
"""Block size."""
SCRYPT_P = 1
"""Parallelism."""
SCRYPT_MAXMEM = 64 * 1024 * 1024
"""OpenSSL's memory ceiling for one hash; the default (32 MiB) is just too small."""
SALT_BYTES = 16
HASH_BYTES = 32
PREFIX = "scrypt"

# Bounds for parameters read from a stored hash, so that a tampered config cannot
# make every login take minutes or exhaust memory.
_MAX_LOG2_N = 20
_MAX_R = 32
_MAX_P = 16

_GENERATED_CHARS = 20
"""Characters of base32 in a generated password: 20 * 5 = 100 bits of entropy."""


def _encode(password: str) -> bytes:
    # NFC so that "ü" typed on one keyboard matches "ü" typed on another.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=dklen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def hash_password(password: str) -> str:
    """The storable scrypt hash of `password`, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(_encode(password), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    """(n, r, p, salt, digest) of a stored hash, or None when it is not well-formed."""
    if not isinstance(stored, str):
        return None
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != PREFIX:
        return None
    _, n_text, r_text, p_text, salt_text, digest_text = parts
    if not (n_text.isdigit() and r_text.isdigit() and p_text.isdigit()):
        return None
    n, r, p = int(n_text), int(r_text), int(p_text)
    if n < 2 or n & (n - 1) or n > 2**_MAX_LOG2_N:
        return None
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P) or 128 * n * r > SCRYPT_MAXMEM // 2:
        return None
    try:
        salt = _unb64(salt_text)
        digest = _unb64(digest_text)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(salt) < 8 or not 16 <= len(digest) <= 64:
        return None
    return n, r, p, salt, digest


def is_valid_hash(stored: str) -> bool:
    """True when `stored` has the format `hash_password` produces (used by the config)."""
    return parse_hash(stored) is not None


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; False for a wrong password or a bad hash.

    Never raises for anything a client can send: non-strings, lone surrogates and
    malformed stored hashes all give False.
    """
    parsed = parse_hash(stored)
    if parsed is None:
        log.warning("a stored password hash is malformed; login refused")
        return False
    if not isinstance(password, str):
        return False
    try:
        encoded = _encode(password)
    except UnicodeEncodeError:
        return False
    n, r, p, salt, digest = parsed
    try:
        candidate = _scrypt(encoded, salt, n, r, p, len(digest))
    except (ValueError, MemoryError):
        log.warning("scrypt failed for a stored hash; login refused")
        return False
    return hmac.compare_digest(candidate, digest)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_unknown(password: str) -> bool:
    """Spends the time of one `verify_password` and returns False.

    For an unknown group: answering at once would tell an attacker which group ids
    exist.
    """
    verify_password(password if isinstance(password, str) else "", _dummy_hash())
    return False


def generate_password() -> str:
    """A strong password a person can type: 20 base32 characters in groups of five.

    Example: `k7mqp-3xwza-rt5hn-2bceu` (100 bits of entropy, lower case, no 0/1/8/9).
    """
    raw = base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()
    chars = raw[:_GENERATED_CHARS]
    return "-".join(chars[i : i + 5] for i in range(0, _GENERATED_CHARS, 5))
