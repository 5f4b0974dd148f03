"""Logs: JSON lines, redaction, private file modes, retention with an injected clock,
the accountability line and an access log without addresses or paths."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.connection import OUTBOX_LIMIT, Connection
from app.logsetup import (
    ACCESS_LOGGER,
    KreisAccessLogger,
    configure_logging,
    log_room_started,
    prune_old_logs,
    redact,
    route_kind,
)
from app.protocol import Pong
from app.pseudonym import Pseudonymizer, pseudonym

DAY = 86400.0
NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC).timestamp()


def _config(log_dir: Path | str, retention: int = 14) -> SimpleNamespace:
    return SimpleNamespace(
        logging=SimpleNamespace(level="INFO", dir=str(log_dir), retention_days=retention)
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _lines(log_dir: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted(log_dir.glob("kreis-*.log")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("peer 127.0.0.1:5555", "peer [ip]:5555"),
        ("from [2001:db8::7]:443", "from [[ip]]:443"),
        ("fe80::1%eth0 up", "[ip] up"),
        ("mapped ::ffff:203.0.113.77.", "mapped [ip]."),
        ("X-Forwarded-For: 203.0.113.77, 10.0.0.1", "X-Forwarded-For: [ip], [ip]"),
        ("caller +49 30 1234567", "caller [number]"),
        ("caller 0171/1234567", "caller [number]"),
        ("caller (030) 123 4567", "caller [number]"),
        ("at 12:30:45, port 54321, v3.14.5", "at 12:30:45, port 54321, v3.14.5"),
        ("conn ps_1234567890 closed", "conn ps_1234567890 closed"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_json_lines_redacted_private_modes(tmp_path: Path, restore_logging: None) -> None:
    log_dir = tmp_path / "logs"
    configure_logging(_config(log_dir), clock=lambda: NOW)
    log = logging.getLogger("kreis.test")
    before = time.time()
    log.warning("peer %s called from %s", "2001:db8::1", "+49 170 1234567", extra={"n": 3})
    after = time.time()
    log.info("extra field", extra={"addr": "198.51.100.9", "kind": "browser"})
    try:
        raise ValueError("bad 192.0.2.55")
    except ValueError:
        log.exception("failed")

    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
    [path] = list(log_dir.iterdir())
    assert path.name == "kreis-2026-11-25.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    for secret in ("2001:db8::1", "1234567", "198.51.100.9", "192.0.2.55"):
        assert secret not in text
    first, second, third = _lines(log_dir)
    assert first["level"] == "warning" and first["logger"] == "kreis.test"
    assert first["msg"] == "peer [ip] called from [number]" and first["n"] == 3
    # ts: when the line was logged (the record's time, not the rotation clock), in UTC,
    # ISO 8601 with milliseconds.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", str(first["ts"]))
    logged = dt.datetime.fromisoformat(str(first["ts"]))
    assert logged.utcoffset() == dt.timedelta(0)
    assert before - 0.001 <= logged.timestamp() <= after
    assert second["addr"] == "[ip]" and second["kind"] == "browser"
    assert "ValueError" in str(third["exc"]) and "[ip]" in str(third["exc"])


def test_room_started_names_group_not_room(tmp_path: Path, restore_logging: None) -> None:
    configure_logging(_config(tmp_path), clock=lambda: NOW)
    log_room_started("kreuzberg")
    [line] = _lines(tmp_path)
    assert line["event"] == "room_started" and line["group"] == "kreuzberg"
    assert line["logger"] == "kreis.audit" and "ts" in line
    assert set(line) == {"ts", "level", "logger", "msg", "event", "group"}


def test_stderr_when_no_dir(
    capsys: pytest.CaptureFixture[str], restore_logging: None, tmp_path: Path
) -> None:
    configure_logging(_config(""))
    logging.getLogger("kreis.test").info("to journald from 10.1.2.3")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(err)["msg"] == "to journald from [ip]"
    assert not list(tmp_path.iterdir())


def test_retention_deletes_old_keeps_new(tmp_path: Path) -> None:
    def day_file(days_ago: int) -> Path:
        day = (dt.datetime.fromtimestamp(NOW, dt.UTC) - dt.timedelta(days=days_ago)).date()
        path = tmp_path / f"kreis-{day.isoformat()}.log"
        path.write_text("{}\n")
        return path

    files = {n: day_file(n) for n in (0, 1, 13, 14, 15, 40)}
    foreign = tmp_path / "operator-notes.txt"
    foreign.write_text("keep me")

    deleted = prune_old_logs(tmp_path, 14, NOW)

    assert sorted(deleted) == sorted([files[14], files[15], files[40]])
    for n in (0, 1, 13):
        assert files[n].exists()
    assert foreign.exists()
    # One day later the 13-day-old file has reached the limit as well.
    assert prune_old_logs(tmp_path, 14, NOW + DAY) == [files[13]]


def test_handler_rotates_daily_and_prunes(tmp_path: Path, restore_logging: None) -> None:
    clock = [NOW]
    old = tmp_path / "kreis-2026-11-01.log"
    tmp_path.mkdir(exist_ok=True)
    old.write_text("{}\n")
    configure_logging(_config(tmp_path, retention=14), clock=lambda: clock[0])
    assert not old.exists()  # pruned at start

    log = logging.getLogger("kreis.test")
    log.info("day one")
    for day in range(1, 16):
        clock[0] = NOW + day * DAY
        log.info("day %d", day)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "kreis-2026-11-27.log" and len(names) == 14
    assert names[-1] == "kreis-2026-12-10.log"


def test_pseudonym_keyed_and_rotates() -> None:
    clock = [NOW]
    ps = Pseudonymizer(clock=lambda: clock[0])
    first = ps("203.0.113.77")
    assert first.startswith("ps_") and len(first) == 13
    int(first[3:], 16)
    assert ps("203.0.113.77") == first
    assert ps("203.0.113.78") != first
    assert Pseudonymizer(clock=lambda: NOW)("203.0.113.77") != first  # another key
    clock[0] += DAY
    assert ps("203.0.113.77") != first
    # Never shows the key, not even in a traceback: neither its bytes nor its hex.
    key: bytes = ps._key
    assert len(key) == 32
    for shown in (repr(ps), str(ps), repr([ps])):
        assert key.hex() not in shown and repr(key) not in shown and key.hex()[:8] not in shown
    assert pseudonym("x") == pseudonym("x")


async def test_warnings_name_a_connection_by_pseudonym(caplog: pytest.LogCaptureFixture) -> None:
    """docs/privacy.md: support follows one source through the log by its pseudonym;
    the address itself never appears."""

    def flood(address: str) -> str:
        conn = Connection(cast(Any, None), address)  # never started: nothing is read
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="app.connection"):
            for _ in range(OUTBOX_LIMIT + 1):
                conn.send(Pong())
        [line] = [r.getMessage() for r in caplog.records if "does not read" in r.getMessage()]
        assert address not in line
        return line.split(" from ")[1].split(":")[0]

    first, again, other = flood("203.0.113.9"), flood("203.0.113.9"), flood("198.51.100.4")
    assert first.startswith("ps_") and first == again != other
    assert first == pseudonym("203.0.113.9")


def test_route_kind_never_contains_path() -> None:
    assert route_kind("/zz-spurlos-7q3x", 200) == "room-page"
    assert route_kind("/static/app.js", 200) == "static"
    assert route_kind("/ws", 101) == "ws"
    assert route_kind("/healthz", 200) == "healthz"
    assert route_kind("/nope/zz-spurlos", 404) == "not-found"


async def test_access_log_without_address_or_slug(tmp_path: Path, restore_logging: None) -> None:
    configure_logging(_config(tmp_path), clock=lambda: NOW)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p>hi</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{slug}", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(
        access_log_class=KreisAccessLogger, access_log=logging.getLogger(ACCESS_LOGGER)
    )
    async with TestClient(server) as client:
        resp = await client.get("/zz-spurlos-7q3x", headers={"X-Forwarded-For": "203.0.113.77"})
        assert resp.status == 200
    text = "\n".join(p.read_text() for p in tmp_path.glob("kreis-*.log"))
    assert "zz-spurlos-7q3x" not in text and "127.0.0.1" not in text
    assert "203.0.113.77" not in text
    [line] = [x for x in _lines(tmp_path) if x.get("event") == "http"]
    assert line["route"] == "room-page" and line["status"] == 200 and line["method"] == "GET"
    assert isinstance(line["duration_ms"], float)


def test_aiohttp_default_access_log_is_silenced(tmp_path: Path, restore_logging: None) -> None:
    """Even a runner left on aiohttp's default access logger writes nothing: it would
    log the peer address and the path (the room's slug)."""
    configure_logging(_config(tmp_path), clock=lambda: NOW)
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /zz-spurlos-7q3x HTTP/1.1" 200')
    assert _lines(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("offer v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\na=ice-pwd:s3cr3t\r\n", "offer [sdp]\r\n"),
        (
            "RTCSessionDescription(sdp='v=0\\r\\no=- 1 IN IP4 1.2.3.4\\r\\n')",
            "RTCSessionDescription(sdp='[sdp]')",
        ),
        ("a=ice-pwd:s3cr3t", "[sdp]"),
        ("remote_password=abc, ufrag='x1'", "remote_password=[secret], ufrag='[secret]'"),
        ("ordinary x=5 text", "ordinary x=5 text"),
    ],
)
def test_redact_removes_sdps_and_ice_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected
