"""Starts the real `kreis serve` for a benchmark, like tests/conftest.py's start_server,
and creates the benchmark's rooms through the signalling protocol as a leader would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.client import KreisClient
from tests.kreis_server import wait_healthy

ROOT = Path(__file__).resolve().parent.parent
GROUP = "benchgruppe"
PASSWORD = "bench-passwort-1234"
SERVER_PORTS = (41000, 42999)
"""UDP range of the server under test (the clients use CLIENT_PORTS)."""
CLIENT_PORTS = (44000, 47999)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BenchServer:
    url: str
    process: subprocess.Popen[bytes]
    tmp: tempfile.TemporaryDirectory[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.tmp.cleanup()


def config_text(
    port: int,
    rooms: dict[str, int],
    media_ports: tuple[int, int],
    log_dir: Path,
    group: str,
    password_hash: str,
    *,
    workers: int = 1,
    log_level: str = "INFO",
    extra: str = "",
) -> str:
    """A benchmark server's kreis.toml: loopback only, limits raised for one address."""
    room_lines = "\n".join(f"{key} = {value}" for key, value in rooms.items())
    return f"""
[server]
host = "127.0.0.1"
port = {port}

[rooms]
{room_lines}
max_participants = 100
max_rooms = 1000

[limits]
flood_messages_per_10s = 10000
# Every benchmark client comes from 127.0.0.1: the per-address limits go up.
connections_per_address = 100000
lobby_per_address = 100000
knocks_per_address = 100000
lobby_chat_per_minute = 10000

[media]
advertised_address = "127.0.0.1"
bind_address = "127.0.0.1"
port_min = {media_ports[0]}
port_max = {media_ports[1]}
workers = {workers}

[logging]
dir = "{log_dir}"
level = "{log_level}"

[groups.{group}]
password_hash = "{password_hash}"
{extra}
"""


def start(
    workers: int = 1, env: dict[str, str] | None = None, lobby_timeout: int = 600
) -> BenchServer:
    """Starts a server with the benchmark's group, bound to loopback; waits for health."""
    from app.passwords import hash_password

    tmp = tempfile.TemporaryDirectory(prefix="kreis-bench-")
    path = Path(tmp.name)
    port = free_port()
    (path / "kreis.toml").write_text(
        config_text(
            port,
            {"empty_timeout_seconds": 60, "knock_timeout_seconds": lobby_timeout},
            SERVER_PORTS,
            path / "logs",
            GROUP,
            hash_password(PASSWORD),
            workers=workers,
        ),
        encoding="utf-8",
    )
    proc_env = dict(os.environ)
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        proc_env[var] = str(path / var.lower())
    proc_env["PYTHONUNBUFFERED"] = "1"
    proc_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--config", str(path / "kreis.toml")],
        cwd=ROOT,
        env=proc_env,
        stdout=open(path / "server.out", "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
    )
    server = BenchServer(f"http://127.0.0.1:{port}", process, tmp)
    try:
        wait_healthy(server.url, process, path / "server.out")
    except RuntimeError:
        server.stop()
        raise
    return server


async def leader(url: str, slugs: list[str], lobby: bool = False) -> KreisClient:
    """A logged-in console connection that started every room in slugs."""
    client = KreisClient(url, kind="console")
    await client.connect()
    await client.request({"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok")
    for slug in slugs:
        await client.request({"type": "create_room", "slug": slug, "lobby": lobby}, "room_created")
    return client
