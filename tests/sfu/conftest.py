"""Fixtures for the SFU tests: a Router on loopback with its own UDP port range."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from codec_watch import codec_watch  # noqa: F401  (a fixture for every SFU test)
from sfu_clients import ROUTER_PORTS

from sfu import MediaSettings, Router


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    r = Router(MediaSettings(port_min=ROUTER_PORTS[0], port_max=ROUTER_PORTS[1]))
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
