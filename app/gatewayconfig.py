"""The `[gateway]` table, read once for the server and the dial-in gateway alike.

The server (`app/config.py`) needs it to accept the gateway and to make PINs; the
gateway (`sipgw/config.py`) needs it to reach the server and to collect PINs. Both
call `gateway_from_table`, so keys, defaults and ranges cannot drift apart (they did:
the gateway once took 4-digit PINs the server refused). It imports nothing of the
server — only the sentence catalogue `app.i18n` — so it is one of the client modules
the gateway may use (docs/architecture.md).

Deutsch: Die Tabelle `[gateway]` wird für Server und Telefon-Gateway an genau einer
Stelle gelesen und geprüft.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from app.i18n import both

PIN_LENGTH_MIN = 6
"""Shortest PIN: with `[sip] pin_tries` and the lockout, guessing 10^6 is hopeless."""
PIN_LENGTH_MAX = 16
DEFAULT_SERVER_URL = "http://127.0.0.1:8080"
_SERVER_URL_RE = re.compile(r"^(https?|wss?)://[^\s/]+(/\S*)?$")


@dataclass(frozen=True)
class GatewayConfig:
    """`[gateway]`: phone dial-in (the gateway's SIP side is configured in `[sip]`)."""

    secret: str = ""
    """Shared secret the gateway authenticates with; empty: dial-in is disabled."""
    numbers: tuple[str, ...] = ()
    """Phone numbers shown to leaders for dial-in."""
    pin_length: int = 9
    """Digits of a room's dial-in PIN (`PIN_LENGTH_MIN`–`PIN_LENGTH_MAX`); the gateway
    ends PIN entry after this many digits or at `#`."""
    hide_numbers: bool = False
    """Show callers as `Telefon` instead of `Telefon …47`."""
    server_url: str = DEFAULT_SERVER_URL
    """URL of the Kreis server the gateway connects to (http(s):// or ws(s)://…/ws)."""
    caller_tries: int = 3
    """Wrong PINs one caller (by number, on any gateway process or machine) may enter
    before it is locked out (`[limits] secret_lockout_seconds`); the address a call
    comes from gets 10 times as many, a dialled number 30 times."""

    @property
    def enabled(self) -> bool:
        """True when a gateway may connect."""
        return bool(self.secret)


class BadGatewayKey(ValueError):
    """A `[gateway]` key with a wrong value; `code` names the sentence in `app.i18n`
    (`config.<code>`), `english`/`german` are that sentence filled in."""

    def __init__(self, key: str, code: str, **values: object) -> None:
        self.name = key
        self.key = f"gateway.{key}"
        self.code = code
        self.values = values
        self.english, self.german = both("config." + code, key=self.key, **values)
        super().__init__(f"{self.key}: {self.english}")


def gateway_from_table(table: Mapping[str, object]) -> GatewayConfig:
    """A checked `GatewayConfig` from the parsed `[gateway]` table; raises `BadGatewayKey`."""
    known = [f.name for f in fields(GatewayConfig)]
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            if close:
                raise BadGatewayKey(key, "unknown_near", near=close[0])
            raise BadGatewayKey(key, "unknown")
    secret = table.get("secret", "")
    if not isinstance(secret, str):
        raise BadGatewayKey("secret", "str")
    numbers = table.get("numbers", [])
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise BadGatewayKey("numbers", "list")
    pin_length = table.get("pin_length", GatewayConfig.pin_length)
    if (
        isinstance(pin_length, bool)
        or not isinstance(pin_length, int)
        or not PIN_LENGTH_MIN <= pin_length <= PIN_LENGTH_MAX
    ):
        raise BadGatewayKey("pin_length", "int", low=PIN_LENGTH_MIN, high=PIN_LENGTH_MAX)
    hide = table.get("hide_numbers", False)
    if not isinstance(hide, bool):
        raise BadGatewayKey("hide_numbers", "bool")
    url = table.get("server_url", DEFAULT_SERVER_URL)
    if not isinstance(url, str) or not _SERVER_URL_RE.match(url):
        raise BadGatewayKey("server_url", "server_url")
    tries = table.get("caller_tries", GatewayConfig.caller_tries)
    if isinstance(tries, bool) or not isinstance(tries, int) or not 1 <= tries <= 100:
        raise BadGatewayKey("caller_tries", "int", low=1, high=100)
    return GatewayConfig(secret, tuple(numbers), pin_length, hide, url, tries)
