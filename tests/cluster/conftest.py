"""Fixtures for the cluster tests: one real Redis and three `kreis serve` nodes per
module (starting them is the slow part), all on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_nodes import RedisServer, start_nodes, start_redis
from kreis_server import KreisServer

pytestmark = pytest.mark.cluster

ROOMS = {"empty_timeout_seconds": 3}
"""Empty rooms end quickly here, so a test can wait for 'every room has ended'. A test
module may set its own `ROOMS` for its nodes."""


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> Iterator[list[KreisServer]]:
    rooms = getattr(request.module, "ROOMS", ROOMS)
    started = start_nodes(tmp_path_factory.mktemp("nodes"), redis, 3, rooms)
    try:
        yield started
    finally:
        for node in started:
            node.stop()


def node_dirs(nodes: list[KreisServer]) -> list[Path]:
    return [n.config_path.parent for n in nodes]
