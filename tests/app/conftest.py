"""Fixtures for protocol tests: protocol clients against a real server process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from protocol_steps import Connect

from app.client import KreisClient


@pytest.fixture
async def connect(kreis_server: Any) -> AsyncIterator[Connect]:
    """Opens protocol clients to the test's server; all are closed afterwards.

    `address` sets X-Forwarded-For (the test server trusts loopback as a proxy), so that
    rate limits per source address can be exercised with distinct addresses."""
    opened: list[KreisClient] = []

    async def open_client(
        kind: str = "browser", lang: str = "en", address: str | None = None
    ) -> KreisClient:
        headers = {"X-Forwarded-For": address} if address else None
        client = KreisClient(kreis_server.url, kind=kind, lang=lang, headers=headers)
        await client.connect()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()
