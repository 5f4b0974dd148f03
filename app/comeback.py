"""The server's side of resume tokens: issuing them to the people in a room, refreshing
them while they are in, checking the ones that come back, and revoking them.

The token format and its cryptography are `app/resume.py`; the rules of who is seated
where are the hub's (`app/hub.py`). This module keeps the bookkeeping between the two:
when a token is due, what it carries (role, the room's switches), how often a
connection may present one (every look counts as a try at a secret), and which tokens
no longer seat anyone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from app.config import resume_key
from app.connection import Connection
from app.protocol import ResumeToken
from app.resume import ResumeClaim, ResumeSigner, Revocations
from app.security import address_key

if TYPE_CHECKING:
    from app.config import Config
    from app.ratelimit import SecretLimiter
    from app.rooms import Member, Room


class ResumeDesk:
    """Resume tokens of this server's rooms."""

    def __init__(self, config: Config, limiter: SecretLimiter) -> None:
        self.config = config
        self.limiter = limiter
        self.signer = ResumeSigner(resume_key(config))
        """Signs tokens with the key from the config, so that they survive a restart."""
        self.revoked = Revocations()
        """Tokens that no longer seat anyone (remove, bar, leave, room end), in memory."""

    @property
    def on(self) -> bool:
        return self.config.rooms.resume_grace_seconds > 0

    @property
    def refresh_seconds(self) -> float:
        """How often a participant gets a fresh token."""
        return max(5.0, self.config.rooms.resume_grace_seconds / 4)

    @property
    def ttl(self) -> float:
        """A token outlives its last refresh by the grace time plus one refresh period,
        so that a drop at any moment leaves at least the grace time to come back."""
        return self.config.rooms.resume_grace_seconds + self.refresh_seconds + 5

    # -- issuing

    def issue(self, room: Room, member: Member, now: float) -> str:
        """A token for a participant; remembered on the member as the one last sent."""
        token = self.signer.issue(
            room.slug,
            member.id,
            member.role,
            member.name,
            self.ttl,
            now,
            group=room.group,
            instance=room.instance,
            kind=member.kind,
            token_id=member.token_id,
            generation=member.generation,
            flags=room.flags(),
        )
        member.resume = token
        member.token_sent = now
        member.token_state = (member.role, room.flags())
        return token

    def watch_token(self, room: Room, now: float) -> str:
        """A watching leader's token: restarts the room after a server restart (with
        `watch`), seats nobody. Revoked only with the room's instance."""
        return self.signer.issue(
            room.slug,
            "",
            "leader",
            None,
            self.ttl,
            now,
            group=room.group,
            instance=room.instance,
            kind="console",
            token_id=room.instance,
            flags=room.flags(),
        )

    def refresh(self, room: Room, now: float) -> None:
        """Sends fresh tokens when they are due, or at once when what they carry (role,
        the room's switches) changed. Old tokens stay valid until they expire."""
        if not self.on:
            return
        for member in room.participants.values():
            if member.kind == "phone" or not member.token_id:
                continue
            due = now - member.token_sent >= self.refresh_seconds
            if due or member.token_state != (member.role, room.flags()):
                member.peer.send(ResumeToken(room.slug, self.issue(room, member, now)))
        if room.watchers:
            due = now - room.watch_token_sent >= self.refresh_seconds
            if due or room.watch_token_flags != room.flags():
                self.send_watch_token(room, None, now)

    def send_watch_token(self, room: Room, peer: Connection | None, now: float) -> None:
        """A watch token to one watching leader (`peer`), or to all of them."""
        if not self.on:
            return
        msg = ResumeToken(room.slug, self.watch_token(room, now))
        if peer is not None:
            peer.send(msg)
            return
        room.watch_token_sent = now
        room.watch_token_flags = room.flags()
        for watcher in room.watchers.values():
            watcher.send(msg)

    # -- checking and revoking

    def claim(self, conn: Connection, slug: str, token: str) -> ResumeClaim | None:
        """The claim of a genuine, unrevoked token, else None. Each look counts as a
        try at a secret; past the limit the token is ignored (the holder knocks)."""
        if not self.on:
            return None
        source = address_key(conn.address)
        keys = [("conn", f"resume:{conn.id}"), ("ip", f"resume:{source}")]
        # A token cannot be guessed (a 128-bit tag); the limit is generous so that a
        # house full of people behind one address with stale tokens is not locked out.
        stamp = self.limiter.begin(keys, scale=10)
        if stamp is None:
            return None
        claim = self.signer.verify(token, slug, time.time())
        if claim is None or not self.revoked.accepts(claim):
            return None
        self.limiter.succeeded(keys, stamp)
        return claim

    def still_valid(self, claim: ResumeClaim) -> bool:
        """A claim checked earlier, looked at again later (a wait for the leader)."""
        return claim.expires > time.time() and self.revoked.accepts(claim)

    def revoke(self, token_id: str) -> None:
        """Nobody comes back with this admission's tokens."""
        if token_id:
            self.revoked.revoke(token_id, time.time() + self.ttl)

    def spend(self, claim: ResumeClaim) -> None:
        """The claim was used: its generation and older ones seat nobody again."""
        self.revoked.spend(claim.token_id, claim.generation, claim.expires)

    def end(self, room: Room) -> None:
        """The room ended: none of its tokens seats anyone again (while this process
        lives; after a restart only a leader's token could start it, and an ended
        room's leader page has dropped its token)."""
        self.revoked.end_instance(room.instance, time.time() + self.ttl)

    def prune(self, now: float) -> None:
        self.revoked.prune(now)
