"""A real Kreis server on loopback, started as its own process, for the tests.

Every test that claims a feature works talks to this real server over HTTP and
WebSocket on 127.0.0.1, exactly as a browser, the console or the gateway would.
Import from here (`from kreis_server import start_server`), never from `conftest`:
several test folders have a conftest.py, so `import conftest` is ambiguous.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUP = "testgruppe"
PASSWORD = "test-passwort-1234"
GATEWAY_SECRET = "gateway-geheimnis-5678"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_range(size: int = 40) -> tuple[int, int]:
    """A block of UDP ports unlikely to collide with other tests in this run."""
    base = 20000 + (os.getpid() * 97 + int(time.monotonic() * 1000)) % 30000
    return base, base + size - 1


@dataclass
class KreisServer:
    """A running `kreis serve` process and what a client needs to reach it."""

    url: str
    port: int
    config_path: Path
    log_dir: Path
    process: subprocess.Popen[bytes]
    group: str = GROUP
    password: str = PASSWORD
    gateway_secret: str = GATEWAY_SECRET
    output: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def invite(self, slug: str, group: str = GROUP) -> str:
        """The `k` code of the room's invitation link, as the server computes it."""
        import tomllib

        from app.hub import invite_code

        groups = tomllib.loads(self.config_path.read_text())["groups"]
        return invite_code(groups[group]["password_hash"], slug)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


HARNESS_LIMITS = {
    "connections_per_address": 1000,
    "lobby_per_address": 1000,
    "knocks_per_address": 10000,
    "lobby_chat_per_minute": 1000,
}
"""Every test client comes from 127.0.0.1, so the per-address limits are raised for the
harness; the security tests (tests/security) start servers with the defaults."""


def write_config(
    path: Path,
    port: int,
    extra: str = "",
    rooms: dict[str, int] | None = None,
    limits: dict[str, int] | None = None,
    media: dict[str, int] | None = None,
) -> None:
    from app.passwords import hash_password

    udp_min, udp_max = free_udp_range()
    room_settings = {
        "empty_timeout_seconds": 30,
        "knock_timeout_seconds": 120,
        "resume_grace_seconds": 20,
        **(rooms or {}),
    }
    room_lines = "\n".join(f"{k} = {v}" for k, v in room_settings.items())
    limit_settings = HARNESS_LIMITS if limits is None else limits
    limit_lines = "\n".join(f"{k} = {v}" for k, v in limit_settings.items())
    media_lines = "\n".join(f"{k} = {v}" for k, v in (media or {}).items())
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[rooms]
{room_lines}

[limits]
{limit_lines}

[media]
advertised_address = "127.0.0.1"
bind_address = "127.0.0.1"
port_min = {udp_min}
port_max = {udp_max}
{media_lines}

[logging]
dir = "{path.parent / "logs"}"

[gateway]
secret = "{GATEWAY_SECRET}"
numbers = ["+49 30 1234567"]

[groups.{GROUP}]
password_hash = "{hash_password(PASSWORD)}"
{extra}
""",
        encoding="utf-8",
    )


def start_server(
    tmp: Path,
    extra_config: str = "",
    env: dict[str, str] | None = None,
    rooms: dict[str, int] | None = None,
    hooks: bool = False,
    limits: dict[str, int] | None = None,
    media: dict[str, int] | None = None,
    health_timeout: float = 60,
) -> KreisServer:
    """Starts `python -m app serve` on a free loopback port and waits for /healthz
    (at most `health_timeout` seconds).

    `hooks`: start tests/serve_with_hooks.py instead, which adds the test-only
    `/_test/*` endpoints (tests/server_hooks.py) to the same app. `limits`: `[limits]`
    settings over the harness's (see `write_config`); `media`: more `[media]` settings
    (e.g. `{"workers": 2}`)."""

    tmp.mkdir(parents=True, exist_ok=True)
    config_path = tmp / "kreis.toml"
    if config_path.exists():  # a restart of the same server keeps its config and port
        import tomllib

        port = int(tomllib.loads(config_path.read_text())["server"]["port"])
    else:
        port = free_port()
        write_config(config_path, port, extra_config, rooms, limits, media)
    log_dir = tmp / "logs"
    proc_env = dict(os.environ)
    proc_env["XDG_CONFIG_HOME"] = str(tmp / "xdg-config")
    proc_env["XDG_STATE_HOME"] = str(tmp / "xdg-state")
    proc_env["XDG_DATA_HOME"] = str(tmp / "xdg-data")
    proc_env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    proc_env["PYTHONUNBUFFERED"] = "1"
    if env:
        proc_env.update(env)
    command = [sys.executable, "-m", "app", "serve"]
    if hooks:
        command = [sys.executable, str(ROOT / "tests" / "serve_with_hooks.py")]
    process = subprocess.Popen(
        [*command, "--config", str(config_path)],
        cwd=ROOT,
        env=proc_env,
        stdout=open(tmp / "server.out", "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
    )
    server = KreisServer(f"http://127.0.0.1:{port}", port, config_path, log_dir, process)
    try:
        # SFU worker processes each import aiortc before the server answers.
        workers = int((media or {}).get("workers", 1))
        wait_healthy(server.url, process, tmp / "server.out", health_timeout + 15 * (workers - 1))
    except RuntimeError:
        server.stop()
        raise
    return server


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], out: Path, timeout: float = 60
) -> None:
    """Waits until the server at `url` answers /healthz; RuntimeError with its output
    if it exits or stays unhealthy (the tests' servers and bench/server.py's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + out.read_text())
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become healthy:\n" + out.read_text())


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1 (PEM), valid for one day."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def worker_pids(server_pid: int) -> list[int]:
    """The server's SFU worker processes (its multiprocessing "spawn" children), sorted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server_pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)
