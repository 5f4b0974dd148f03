"""Shared fixtures: real Kreis servers on loopback (see tests/kreis_server.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kreis_server import (  # noqa: F401 - re-exported for older imports
    GATEWAY_SECRET,
    GROUP,
    PASSWORD,
    ROOT,
    KreisServer,
    free_port,
    free_udp_range,
    start_server,
    write_config,
)

STRICT = os.environ.get("KREIS_STRICT") == "1"
"""Set by `.ci/run`: CI installs every tool, so a skip there means a broken install."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under KREIS_STRICT=1 a skipped test counts as failed, with its skip reason.

    Tests skip when a tool (baresip, SIPp, Chromium, Firefox, coturn, PortAudio) is
    missing, which is right on a developer's laptop and wrong in CI: a failed
    install must not turn into a green run that tested less.
    """
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but KREIS_STRICT=1 runs every test: {reason}"


@pytest.fixture
def kreis_server(tmp_path: Path) -> Iterator[KreisServer]:
    """A fresh server per test (rooms live in memory, so tests cannot leak into each other)."""
    server = start_server(tmp_path / "server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KreisServer]:
    """One server for a whole test module, for tests that use distinct room slugs."""
    server = start_server(tmp_path_factory.mktemp("shared-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., KreisServer]]:
    """Starts servers with special settings (`rooms={...}`, `extra_config=...`); all are
    stopped after the test."""
    started: list[KreisServer] = []

    def start(name: str = "custom", **kwargs: Any) -> KreisServer:
        server = start_server(tmp_path / name, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves loopback out of its host candidates, and the test namespace has
    nothing else: aiortc participants in the test process gather 127.0.0.1."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
