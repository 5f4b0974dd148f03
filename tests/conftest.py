"""Shared fixtures: real Kreis servers on loopback (see tests/kreis_server.py)."""

from __future__ import annotations

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
