"""Time-limited TURN credentials for the browser (coturn's `use-auth-secret` scheme).

Browsers behind strict firewalls reach the media ports only through a TURN relay. Kreis
never points browsers at a public STUN or TURN server; it hands out credentials for the
operator's own coturn, computed from a secret both share (the "TURN REST API"):

    username   = "<unix expiry>:kreis"
    credential = base64(HMAC-SHA1(static-auth-secret, username))

coturn recomputes the credential from the username and refuses it after the expiry, so
nothing needs to be stored on either side. The username carries no person: every
participant gets the same shape, and the expiry only says when it stops working.

Deutsch: Kreis erzeugt für den Browser zeitlich begrenzte Zugangsdaten für den eigenen
TURN-Server (coturn mit `use-auth-secret` und demselben `static-auth-secret`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Config

USER_SUFFIX = "kreis"


def turn_credential(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)), exactly what coturn computes."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers(config: Config, now: float | None = None) -> list[dict[str, Any]]:
    """The RTCIceServer list for `hello`: the configured TURN server, or nothing.

    From `[turn]`: `url` (one URL, or several separated by commas), `secret` and
    `ttl_seconds`. Empty when URL or secret is missing: Kreis then relies on direct
    connectivity and never falls back to a public server.
    """
    turn = config.turn
    urls = [u.strip() for u in turn.url.split(",") if u.strip()]
    if not urls or not turn.secret:
        return []
    expiry = int(time.time() if now is None else now) + turn.ttl_seconds
    username = f"{expiry}:{USER_SUFFIX}"
    return [
        {"urls": urls, "username": username, "credential": turn_credential(turn.secret, username)}
    ]
