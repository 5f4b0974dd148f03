"""Resume tokens: how an admitted person comes back without knocking again.

A participant holds a token from the moment they are admitted; the server refreshes it
while they are in the room. After a dropped connection, a server restart (or, in a
cluster, a dead node) the client sends it with its `join` and is seated again with its
old id and role, past the lobby and a lock, never past a bar or a removal.

The token is a secret bearer credential, short-lived and bound to one room and one
person. It carries everything a server needs to seat its holder even when it has never
heard of the room (after a restart): member id, role, kind, name, the leader's group,
which start of the room it belongs to (`instance`) and, in a leader's token, the room's
switches (lobby, lock, E2EE). Nothing in it is readable: the body is encrypted and
authenticated (encrypt-then-MAC, both HMAC-SHA256 under keys derived from one server
key), and the room's slug is bound in as associated data, never written into it. So a
token that ends up in a log or a proxy's memory tells nobody a name, a slug or a group.

    k1.<base64url( nonce(12) | body ⊕ HMAC-CTR keystream | tag(16) )>
    tag = HMAC(mac_key, "kreis-resume-v1" | SHA-256(slug) | nonce | ciphertext)[:16]

Revocation (`Revocations`) lives in the memory of the server that owns the room:
removing, barring and a participant's own `leave` revoke their token id; a token that
was used is dead (its generation is spent, the holder gets a new one); the end of a
room revokes its instance. A restart forgets revocations, which is why a guest's token
never starts a room by itself: only a leader's token restarts a room, with the same
instance, and an ended room's leader page drops its token.

Tokens are secrets: never log them, and never log what `verify` returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

PREFIX = "k1."
"""Version marker of the token format."""

MAX_TOKEN_CHARS = 512
"""Longest token `verify` looks at (the protocol limit of `join.resume`)."""

_NONCE = 12
_TAG = 16
_TID = 9
_HEAD = struct.Struct(">IHBBB")  # expires, generation, role, kind, flags

ROLES = ("leader", "coleader", "guest", "phone")
KINDS = ("browser", "console", "phone")

FLAG_LOBBY = 1
FLAG_LOCKED = 2
FLAG_E2EE = 4


@dataclass(frozen=True)
class ResumeClaim:
    """What a valid token says about its holder."""

    slug: str
    """The room it is bound to (given to `verify`, never read from the token)."""
    member_id: str
    """The participant id the holder had; empty for a leader who only watched the room."""
    role: str
    """`leader`, `coleader`, `guest` or `phone`."""
    kind: str
    """`browser`, `console` or `phone`."""
    name: str | None
    """The display name they were admitted with (None for a watching leader)."""
    group: str
    """The group that started the room (a leader's token restarts the room for it)."""
    instance: str
    """Which start of the room: a room created again at the same slug has another."""
    expires: float
    """Unix time after which the token is worthless."""
    token_id: str
    """Stable for one admission across refreshes: what revocation names."""
    generation: int
    """Counts resumes of one admission; a used generation is spent."""
    flags: int = 0
    """A leader's token: the room's switches (`FLAG_LOBBY`, `FLAG_LOCKED`, `FLAG_E2EE`)."""


def _derive(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"kreis-resume-key\0" + label, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None


def _text(value: str, width: int) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) >= 1 << (8 * width):
        raise ValueError("too long for a resume token")
    return len(raw).to_bytes(width, "big") + raw


class _Reader:
    """Strict parser of the decrypted body: any surplus or shortfall is a bad token."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def text(self, width: int) -> str:
        return self.take(int.from_bytes(self.take(width), "big")).decode("utf-8")


class ResumeSigner:
    """Issues and verifies resume tokens under one server key (at least 16 bytes)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a resume key needs at least 16 bytes")
        self._enc = _derive(key, b"enc")
        self._mac = _derive(key, b"mac")

    def issue(
        self,
        slug: str,
        member_id: str,
        role: str,
        name: str | None,
        ttl_seconds: float,
        now: float,
        *,
        group: str = "",
        instance: str = "",
        kind: str = "browser",
        token_id: str | None = None,
        generation: int = 0,
        flags: int = 0,
    ) -> str:
        """A token for `member_id` in room `slug`, valid for `ttl_seconds` from `now`
        (Unix time). Pass the same `token_id` on refreshes of one admission."""
        tid = token_id if token_id is not None else new_token_id()
        body = (
            _HEAD.pack(
                int(now + ttl_seconds),
                generation & 0xFFFF,
                ROLES.index(role),
                KINDS.index(kind),
                flags & 0xFF,
            )
            + _text(tid, 1)
            + _text(member_id, 1)
            + _text(instance, 1)
            + _text(group, 1)
            + (b"\x00" if name is None else b"\x01" + _text(name, 2))
        )
        nonce = secrets.token_bytes(_NONCE)
        sealed = _xor(body, self._stream(nonce, len(body)))
        return PREFIX + _b64(nonce + sealed + self._tag(slug, nonce, sealed))

    def verify(self, token: str, slug: str, now: float) -> ResumeClaim | None:
        """The claim of a genuine, unexpired token for this room, else None. It does not
        know revocations: ask `Revocations` too."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return None
        if not token.startswith(PREFIX):
            return None
        raw = _unb64(token[len(PREFIX) :])
        if raw is None or len(raw) < _NONCE + _HEAD.size + _TAG:
            return None
        nonce, sealed, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(slug, nonce, sealed)):
            return None
        body = _xor(sealed, self._stream(nonce, len(sealed)))
        try:
            claim = _parse(body, slug)
        except (ValueError, IndexError, UnicodeDecodeError):
            return None
        if claim.expires <= now:
            return None
        return claim

    def _tag(self, slug: str, nonce: bytes, sealed: bytes) -> bytes:
        bound = hashlib.sha256(slug.encode("utf-8")).digest()
        message = b"kreis-resume-v1" + bound + nonce + sealed
        return hmac.new(self._mac, message, hashlib.sha256).digest()[:_TAG]

    def _stream(self, nonce: bytes, length: int) -> bytes:
        blocks = []
        for counter in range((length + 31) // 32):
            block = nonce + counter.to_bytes(4, "big")
            blocks.append(hmac.new(self._enc, block, hashlib.sha256).digest())
        return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def _parse(body: bytes, slug: str) -> ResumeClaim:
    reader = _Reader(body)
    expires, generation, role, kind, flags = _HEAD.unpack(reader.take(_HEAD.size))
    tid = reader.text(1)
    member_id = reader.text(1)
    instance = reader.text(1)
    group = reader.text(1)
    has_name = reader.take(1)
    name = reader.text(2) if has_name == b"\x01" else None
    if has_name not in (b"\x00", b"\x01") or reader.pos != len(body):
        raise ValueError("malformed")
    return ResumeClaim(
        slug=slug,
        member_id=member_id,
        role=ROLES[role],
        kind=KINDS[kind],
        name=name,
        group=group,
        instance=instance,
        expires=float(expires),
        token_id=tid,
        generation=generation,
        flags=flags,
    )


def new_token_id() -> str:
    """A fresh token id for one admission (12 URL-safe characters)."""
    return secrets.token_urlsafe(_TID)


class Revocations:
    """Token ids and room instances that no longer resume anyone, until their tokens
    would have expired anyway (so this never grows beyond the tokens in flight).

    A token id maps to the lowest generation still accepted: a used token is dead
    while its successor works; a removed person's id is dead for good."""

    DEAD = 1 << 30

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[int, float]] = {}
        self._instances: dict[str, float] = {}

    def revoke(self, token_id: str, until: float) -> None:
        """Nobody comes back with this admission's tokens (remove, bar, leave)."""
        self._tokens[token_id] = (self.DEAD, until)

    def spend(self, token_id: str, generation: int, until: float) -> None:
        """Tokens of this admission up to `generation` are used up."""
        low, old_until = self._tokens.get(token_id, (0, until))
        self._tokens[token_id] = (max(low, generation + 1), max(old_until, until))

    def end_instance(self, instance: str, until: float) -> None:
        """The room ended: none of its tokens seat anyone again."""
        self._instances[instance] = until

    def accepts(self, claim: ResumeClaim) -> bool:
        if claim.instance in self._instances:
            return False
        low, _until = self._tokens.get(claim.token_id, (0, 0.0))
        return claim.generation >= low

    def prune(self, now: float) -> None:
        """Forgets entries whose tokens have all expired."""
        self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
        self._instances = {k: v for k, v in self._instances.items() if v > now}
