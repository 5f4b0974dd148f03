"""Errors of the console that reach the leader, each with a stable code and a sentence.

The code is either a server error code from docs/protocol.md or one of the console's
own (`unreachable`, `bad_certificate`, `timeout`); `explain()` turns it into a sentence
a non-technical leader understands, in the current language.
"""

from __future__ import annotations

from tui.i18n import TEXTS, t


class ConsoleError(Exception):
    """Something the leader must be told about."""

    def __init__(self, code: str, server_message: str = "", retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.server_message = server_message
        """The server's own sentence, used when the console has none for `code`."""
        self.retry_after = retry_after

    def explain(self) -> str:
        """The sentence for the leader, in the current language."""
        return explain(self.code, self.server_message, self.retry_after)


class AudioError(ConsoleError):
    """No usable sound device (or audio file); the console goes on without audio."""

    def __init__(self, reason: str) -> None:
        super().__init__("no_audio", reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def explain(code: str, server_message: str = "", retry_after: int | None = None) -> str:
    """A sentence for an error code (console or server), in the current language."""
    key = f"err.{code}"
    if code == "rate_limited":
        return t(key, seconds=retry_after if retry_after is not None else "?")
    if key in TEXTS:
        return t(key)
    return t("err.other", message=server_message or code)
