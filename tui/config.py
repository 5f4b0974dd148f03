"""The console's remembered settings: server address and group, never the password.

Stored as TOML in `user_config_dir("kreis")/console.toml` (or the `--config` path), so
the leader does not have to type the address every Tuesday. Nothing about meetings is
stored: no rooms, names or chat.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w
from platformdirs import user_config_dir

log = logging.getLogger(__name__)


def default_path() -> Path:
    """`console.toml` in the platform's config directory for "kreis"."""
    return Path(user_config_dir("kreis")) / "console.toml"


@dataclass
class ConsoleConfig:
    """What the login screen fills in for the leader."""

    server_url: str = ""
    """The server's address, e.g. https://kreis.example.org."""
    group: str = ""
    """The group id the leader logs in with."""

    @classmethod
    def load(cls, path: Path) -> ConsoleConfig:
        """The saved settings, or empty ones when there are none or the file is broken."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            log.warning(
                "console config %s unreadable (%s); starting empty", path, type(exc).__name__
            )
            return cls()
        console = data.get("console", {})
        if not isinstance(console, dict):
            return cls()
        return cls(str(console.get("server_url", "")), str(console.get("group", "")))

    def save(self, path: Path) -> None:
        """Writes server address and group (and nothing else) to `path`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = tomli_w.dumps({"console": {"server_url": self.server_url, "group": self.group}})
            path.write_text(
                "# kreis console: remembered login (never the password)\n" + text, encoding="utf-8"
            )
        except OSError as exc:
            log.warning("could not save console config (%s)", type(exc).__name__)
