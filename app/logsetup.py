"""Logging for Kreis: structured, redacted, and deleted after the retention period.

The privacy promise is "technically necessary logs, kept 14 days, nothing personal in
them". This module is where that promise is kept for everything the server writes:

- one JSON object per line (`ts`, `level`, `logger`, `msg`, plus `extra=` fields), to
  stderr (journald) when `[logging] dir` is empty, otherwise to one file per UTC day
  (`kreis-YYYY-MM-DD.log`, mode 0600, in a directory created with mode 0700);
- files whose day lies `retention_days` (default 14) or more in the past are deleted
  at start, at every day change and every ten minutes (`prune_old_logs`), so no line is
  ever older than the retention period (plus at most ten minutes);
- a redaction filter on every handler masks IPv4/IPv6 addresses and phone-number-like
  digit runs. That is defence in depth: the code must not log them in the first place;
- aiohttp's own access log (which would write client addresses and paths, that is room
  slugs) is silenced; `KreisAccessLogger` logs method, status, duration and a route
  kind (`room-page`, `static`, `ws`, …) instead, never the path.

Deutsch: Kreis schreibt Protokolle als JSON-Zeilen ohne Namen, Raumnamen, IP-Adressen
oder Telefonnummern und löscht Protokolldateien nach `retention_days` Tagen (Standard 14).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

Clock = Callable[[], float]

LOG_FILE_RE = re.compile(r"^kreis-(\d{4}-\d{2}-\d{2})\.log$")
"""Only files matching this name are ever pruned: an operator's other files are safe."""

PRUNE_INTERVAL_SECONDS = 600.0
DEFAULT_RETENTION_DAYS = 14

AUDIT_LOGGER = "kreis.audit"
ACCESS_LOGGER = "kreis.access"

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)

# --- redaction -------------------------------------------------------------------------

_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[\w.-]+)?)(?![\w:]|\.\d)"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
# Seven or more digits, optionally with a leading + and single separators between them
# (spaces, dashes, slashes, parentheses): phone numbers in all their usual spellings.
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d(?:[ \-/()]{0,2}\d){6,}(?!\w)")

IP_MASK = "[ip]"
PHONE_MASK = "[number]"
SDP_MASK = "[sdp]"
SECRET_MASK = "[secret]"

# A session description, as lines or as one repr'd string (`'v=0\\r\\no=- …'`): from
# its `v=0` to the end of the run of `x=…` lines (or of the quoted string).
_SDP = re.compile(
    r"v=0(?:(?:\\r)?\\n|\r?\n)(?:[^'\"\r\n]*(?:(?:\\r)?\\n|\r?\n)(?=[a-z]=))*[^'\"\r\n]*"
)
# SDP attribute lines outside a whole description (`a=ice-pwd:…`, `c=IN IP4 …`).
_SDP_LINE = re.compile(r"(?m)^[ \t]*[vocmka]=[^\r\n]*")
# ICE credentials however they are spelt (`ice-pwd:x`, `password='x'`, `ufrag=x`).
_ICE = re.compile(
    r"(?i)(?<![a-z0-9])(ice-pwd|ice-ufrag|ice_pwd|ice_ufrag|usernameFragment|password|ufrag|pwd)"
    r"(['\"]?\s*[:=]\s*['\"]?)[^\s'\",)\]}]+"
)


def _mask_ipv6(match: re.Match[str]) -> str:
    candidate = match.group(1).split("%", 1)[0]
    if candidate.count(":") < 2:
        return match.group(0)
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return match.group(0)
    return IP_MASK


def redact(text: str) -> str:
    """Masks session descriptions, ICE credentials, IP addresses and phone-number-like
    digit runs in `text`."""
    if "=" in text:
        text = _SDP.sub(SDP_MASK, text)
        text = _SDP_LINE.sub(SDP_MASK, text)
        text = _ICE.sub(lambda m: m.group(1) + m.group(2) + SECRET_MASK, text)
    if not any(ch.isdigit() for ch in text):
        return text
    text = _IPV6_CANDIDATE.sub(_mask_ipv6, text)
    text = _IPV4.sub(IP_MASK, text)
    return _PHONE.sub(PHONE_MASK, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (bytes, bytearray)):
        return redact(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _redact_value(v) for k, v in value.items()}
    return redact(str(value))


class RedactionFilter(logging.Filter):
    """Rewrites every record so that no IP address or phone number reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format must not crash logging
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = _redact_value(value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, msg and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# --- files and retention ---------------------------------------------------------------


def _day_of(timestamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date()


def prune_old_logs(log_dir: Path | str, retention_days: int, now: float) -> list[Path]:
    """Deletes Kreis log files whose day began `retention_days` or more days before `now`.

    A file holds one UTC day; it is deleted as soon as its first line could be older
    than the retention period, so no line outlives it. Returns the deleted paths.
    """
    directory = Path(log_dir)
    if not directory.is_dir():
        return []
    cutoff = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(days=retention_days)
    deleted: list[Path] = []
    for path in sorted(directory.iterdir()):
        match = LOG_FILE_RE.match(path.name)
        if not match or not path.is_file():
            continue
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            continue
        day_start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        if day_start <= cutoff:
            try:
                path.unlink()
                deleted.append(path)
            except FileNotFoundError:
                pass
    return deleted


def _open_private(path: Path) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # an existing file from an older version may have wider modes
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


class DailyFileHandler(logging.Handler):
    """Writes to `kreis-YYYY-MM-DD.log` (UTC day, mode 0600) and prunes old days.

    Pruning runs when the handler opens, on each day change, and every ten minutes on
    a daemon thread, so retention holds even on a day without a single log line.
    """

    def __init__(self, log_dir: Path, retention_days: int, clock: Clock = time.time) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.retention_days = retention_days
        self.clock = clock
        log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._day: dt.date | None = None
        self._stream: TextIO | None = None
        self._stop = threading.Event()
        self.prune()
        self._pruner = threading.Thread(target=self._prune_loop, name="kreis-log-prune")
        self._pruner.daemon = True
        self._pruner.start()

    def prune(self) -> list[Path]:
        try:
            return prune_old_logs(self.log_dir, self.retention_days, self.clock())
        except OSError:
            return []

    def _prune_loop(self) -> None:
        while not self._stop.wait(PRUNE_INTERVAL_SECONDS):
            with self.lock or threading.RLock():
                self.prune()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            day = _day_of(self.clock())
            if day != self._day or self._stream is None:
                if self._stream is not None:
                    self._stream.close()
                self._day = day
                self._stream = _open_private(self.log_dir / f"kreis-{day.isoformat()}.log")
                self.prune()
            self._stream.write(line + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._stop.set()
        with self.lock or threading.RLock():
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        super().close()


# --- setup -----------------------------------------------------------------------------


def _section(config: Any, name: str) -> Any:
    return getattr(config, name, None) if config is not None else None


def configure_logging(config: Any, clock: Clock = time.time) -> None:
    """Sets up the root logger from `config.logging` (`level`, `dir`, `retention_days`).

    Replaces any handlers installed earlier by this function, so calling it twice (or
    from tests) is safe.
    """
    section = _section(config, "logging")
    level_name = str(getattr(section, "level", "") or "INFO").upper()
    log_dir = getattr(section, "dir", "") or ""
    retention = max(1, int(getattr(section, "retention_days", 0) or DEFAULT_RETENTION_DAYS))

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_kreis", False):
            root.removeHandler(old)
            old.close()

    handler: logging.Handler
    if str(log_dir).strip():
        handler = DailyFileHandler(Path(str(log_dir)).expanduser(), retention, clock)
    else:
        handler = logging.StreamHandler(sys.stderr)
    setattr(handler, "_kreis", True)  # noqa: B010 - marks handlers this function owns
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level_name, logging.INFO))

    # aiohttp's access log writes the peer address and the path (= the room slug).
    access = logging.getLogger("aiohttp.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    # Libraries that would otherwise log addresses at INFO (ICE candidate pairs) and
    # whole SDPs with ICE passwords at DEBUG: WARNING at most, whatever the level.
    for noisy in THIRD_PARTY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


THIRD_PARTY_LOGGERS = ("aioice", "aiortc", "av", "libav")
"""Held at WARNING or quieter by `configure_logging` (also with `level = "DEBUG"`)."""


def configure_process_logging(level: str = "INFO", log_dir: str = "", part: str = "") -> None:
    """`configure_logging` for a process without a server config (`kreis dial-in`,
    `kreis console`): the same JSON lines, masking and retention. `part` names the
    process among its siblings (`backend 1`) in a `part` field of every line."""
    section = type("LoggingSection", (), {"level": level, "dir": log_dir, "retention_days": 0})
    configure_logging(type("ProcessConfig", (), {"logging": section})())
    if part:
        for handler in logging.getLogger().handlers:
            if getattr(handler, "_kreis", False):
                handler.addFilter(_PartFilter(part))


class _PartFilter(logging.Filter):
    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def filter(self, record: logging.LogRecord) -> bool:
        record.part = self.part
        return True


# --- the one line a room leaves behind -------------------------------------------------


def log_room_started(group_id: str) -> None:
    """Accountability: which group started a room, and when (the record's `ts`).

    Never the room's slug, never a person: the group is a configured organisational
    unit, and after the meeting nobody can tell from the logs which room it was.
    """
    logging.getLogger(AUDIT_LOGGER).info(
        "room started by group", extra={"event": "room_started", "group": group_id}
    )


# --- access log ------------------------------------------------------------------------


def route_kind(path: str, status: int) -> str:
    """A coarse name for what a request was for. Never contains the path itself."""
    if path == "/ws":
        return "ws"
    if path == "/":
        return "index"
    if path.startswith("/static/"):
        return "static"
    if path in ("/healthz", "/metrics", "/favicon.ico", "/robots.txt"):
        return path.lstrip("/").replace(".", "-")
    if path.startswith("/_test/"):
        return "test-hook"
    if status == 404:
        return "not-found"
    if path.count("/") == 1:
        return "room-page"
    return "other"


class KreisAccessLogger(AbstractAccessLogger):
    """An access log without addresses or paths: method, status, duration, route kind.

    Use it with `web.AppRunner(app, access_log_class=KreisAccessLogger,
    access_log=logging.getLogger(ACCESS_LOGGER))` (see `access_log_options()`).
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s",
            request.method,
            response.status,
            route_kind(request.path, response.status),
            extra={
                "event": "http",
                "method": request.method,
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
                "route": route_kind(request.path, response.status),
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def access_log_options() -> dict[str, Any]:
    """Keyword arguments for `web.AppRunner(...)` / `web.run_app(...)`."""
    return {
        "access_log_class": KreisAccessLogger,
        "access_log": logging.getLogger(ACCESS_LOGGER),
    }
