"""Fixtures for the hostile battery: real servers with the product's default limits.

The harness normally raises the per-address limits (every test client comes from
127.0.0.1); these tests run against the defaults and give each attacker and each
honest guest its own source address through `X-Forwarded-For`, which the server
honours from loopback (its default `trusted_proxies`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kreis_server import KreisServer, start_server

from app.client import KreisClient


@pytest.fixture
def gate_server(tmp_path: Path) -> Iterator[KreisServer]:
    """A real server with every `[limits]` at its default."""
    server = start_server(tmp_path / "gate", limits={})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def open_client(gate_server: KreisServer) -> AsyncIterator[Any]:
    """Opens protocol clients from a given source address; all closed afterwards."""
    opened: list[KreisClient] = []

    async def open_one(address: str, kind: str = "browser", **kwargs: Any) -> KreisClient:
        client = KreisClient(
            gate_server.url, kind=kind, headers={"X-Forwarded-For": address}, **kwargs
        )
        await client.connect()
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        await client.close()
