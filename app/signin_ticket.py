"""Sign-in tickets: a leader's page signs in again after a reconnect without scrypt.

Every `login_ok` carries a ticket for the group just signed in to. The page keeps it in
memory only (as it keeps the password typed at the start) and sends it with its next
`login` in place of the password, after a dropped connection or a failover. Checking
it is one HMAC; checking the password is scrypt, which on a busy machine took seconds
and held up the leader's return, and with it the room's (issue 13).

    t1.<base64url( expires(4) | tag(16) )>
    tag = HMAC(key, "kreis-signin-ticket" | group | SHA-256(password hash) | expires)[:16]

The key is derived from the resume key (`app.config.resume_key`): the cluster key in a
cluster, so any node accepts a ticket another node issued. A new group password voids
every ticket of the group (its hash is bound in), and each expires after `TTL_SECONDS`
(the page then signs in with the password, as before). A ticket is a secret like the
password: tried under the same rate limit, never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

PREFIX = "t1."
TTL_SECONDS = 4 * 3600
"""How long a ticket signs in: longer than most meetings; refreshed at every sign-in."""
MAX_CHARS = 64
"""Longest ticket looked at."""

_TAG = 16
_EXPIRES = struct.Struct(">I")


class SigninTickets:
    """Issues and checks sign-in tickets under one server key."""

    def __init__(self, resume_key: bytes) -> None:
        self._key = hmac.new(resume_key, b"kreis-signin-ticket-key", hashlib.sha256).digest()

    def _tag(self, group: str, password_hash: str, expires: bytes) -> bytes:
        mac = hmac.new(self._key, b"kreis-signin-ticket\0", hashlib.sha256)
        mac.update(group.encode() + b"\0")
        mac.update(hashlib.sha256(password_hash.encode()).digest())
        mac.update(expires)
        return mac.digest()[:_TAG]

    def issue(self, group: str, password_hash: str, now: float) -> str:
        expires = _EXPIRES.pack(int(now) + TTL_SECONDS)
        raw = expires + self._tag(group, password_hash, expires)
        return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def check(self, ticket: str, group: str, password_hash: str, now: float) -> bool:
        """Whether `ticket` signs in to `group` (with this password hash) at `now`."""
        if len(ticket) > MAX_CHARS or not ticket.startswith(PREFIX):
            return False
        body = ticket[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return False
        if len(raw) != _EXPIRES.size + _TAG:
            return False
        expires, tag = raw[: _EXPIRES.size], raw[_EXPIRES.size :]
        (until,) = _EXPIRES.unpack(expires)
        if not now < until <= now + TTL_SECONDS + 60:
            return False
        return hmac.compare_digest(tag, self._tag(group, password_hash, expires))
