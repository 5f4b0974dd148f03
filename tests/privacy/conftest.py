"""Fixtures for the privacy tests: a real coturn on loopback and Debian's Chromium.

coturn runs with the TURN REST scheme (`--use-auth-secret`), listens and relays on
127.0.0.1 only, and keeps its log in the test's temporary directory. Chromium is driven
through Playwright's async API with fake camera and microphone.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chromium_flags import CHROMIUM, CHROMIUM_ARGS

PAGE_DIR = Path(__file__).resolve().parent / "page"
TURN_SECRET = "turn-geheimnis-im-test-4711"
METRICS_TOKEN = "metrik-token-im-test-0815"


def _harness() -> Any:
    """tests/conftest.py under a name of its own (every conftest module is "conftest")."""
    name = "kreis_test_harness"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def harness() -> Any:
    """tests/conftest.py as a module (`start_server`, `write_config`, …)."""
    return _harness()


@pytest.fixture
def audit_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real `kreis serve` with the test hooks on and a /metrics token, so a test can
    look into its memory and read its metrics. Everything it may write (logs, XDG
    dirs, stdout/stderr) lands under `server.config_path.parent`. Parametrized
    indirectly with a number, it runs the SFU in that many worker processes
    (`[media] workers`), whose memory the hooks search as well."""
    harness = _harness()
    workers = int(getattr(request, "param", 1))
    server = harness.start_server(
        tmp_path / "server",
        extra_config=f'\n[metrics]\ntoken = "{METRICS_TOKEN}"\nloopback_only = true\n',
        hooks=True,
        media={"workers": workers} if workers > 1 else None,
    )
    server.workers = workers
    server.metrics_token = METRICS_TOKEN
    try:
        yield server
    finally:
        server.stop()


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, other) as second:
                try:
                    second.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@dataclass
class Coturn:
    """A running coturn and what a Kreis config needs to point at it."""

    port: int
    secret: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    binary = shutil.which("turnserver") or "/usr/bin/turnserver"
    if not Path(binary).exists():
        pytest.skip("coturn (turnserver) is not installed")
    port = _free_port()
    relay_min = 49152 + (port % 1000) * 10
    log = tmp_path / "turn.log"
    process = subprocess.Popen(
        [
            binary,
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=kreis.test",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            f"--min-port={relay_min}",
            f"--max-port={relay_min + 9}",
            "--allow-loopback-peers",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--fingerprint",
            "--no-stdout-log",
            "--simple-log",
            f"--log-file={log}",
            f"--pidfile={tmp_path / 'turn.pid'}",
            f"--userdb={tmp_path / 'turndb'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"turnserver exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("turnserver did not start listening")
    try:
        yield Coturn(port, TURN_SECRET, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
