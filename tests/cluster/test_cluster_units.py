"""The `[cluster]` table and the relay's signed header, without Redis or a server."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.cluster.directory import Node
from app.cluster.node import groups_fingerprint, other_groups
from app.cluster.relay import Relay, Relayed, Route, sign_relay, verify_relay
from app.config import GroupConfig, config_from_dict, resume_key
from app.connection import Waiting
from app.errors import ConfigError

KEY = "k" * 40


def test_without_a_cluster_table_nothing_changes() -> None:
    assert config_from_dict({}).cluster is None


def test_cluster_table_is_checked() -> None:
    good = {"key": KEY, "address": "http://10.0.0.2:8080"}
    config = config_from_dict({"cluster": good})
    assert config.cluster is not None and config.cluster.ttl_seconds == 6
    # tokens are signed with the cluster key: every node verifies every other's
    assert resume_key(config) == resume_key(config_from_dict({"cluster": dict(good)}))
    assert resume_key(config) != resume_key(config_from_dict({}))
    for bad, key in (
        ({**good, "key": "short"}, "cluster.key"),
        ({"key": KEY}, "cluster.address"),
        ({**good, "redis_url": "http://x"}, "cluster.redis_url"),
        ({**good, "ttl_seconds": 3}, "cluster.ttl_seconds"),
        ({**good, "sentinel": []}, "cluster.sentinel"),
    ):
        with pytest.raises(ConfigError) as refused:
            config_from_dict({"cluster": bad})
        assert refused.value.key == key


def test_relay_header_speaks_for_an_address_only_with_the_key() -> None:
    header = sign_relay(KEY, "198.51.100.7", 1000.0)
    assert verify_relay(KEY, header, 1010.0) == Relayed("198.51.100.7", None)
    assert verify_relay("x" * 40, header, 1010.0) is None  # another cluster's key
    assert verify_relay(KEY, header, 1000.0 + 3600) is None  # replayed much later
    forged = header.replace("198.51.100.7", "203.0.113.9")
    assert verify_relay(KEY, forged, 1010.0) is None
    assert verify_relay(KEY, "nonsense", 1010.0) is None


def test_relay_header_names_the_signed_in_group_only_with_the_key() -> None:
    header = sign_relay(KEY, "198.51.100.7", 1000.0, "funkclub")
    assert verify_relay(KEY, header, 1010.0) == Relayed("198.51.100.7", "funkclub")
    stamp, address, _, mac = header.split(" ")
    for named in ("-", base64.urlsafe_b64encode(b"andere").decode(), "%%%"):
        assert verify_relay(KEY, f"{stamp} {address} {named} {mac}", 1010.0) is None
    assert verify_relay("x" * 40, header, 1010.0) is None


def test_nodes_that_hashed_the_group_password_each_are_told_apart() -> None:
    shared = {"funkclub": GroupConfig(password_hash="scrypt$15$8$1$salzA$hashA")}
    mine = groups_fingerprint(KEY, shared)
    assert groups_fingerprint(KEY, dict(shared)) == mine
    assert "funkclub" not in mine and "salzA" not in mine  # Redis sees neither
    rehashed = {"funkclub": GroupConfig(password_hash="scrypt$15$8$1$salzB$hashB")}
    other = groups_fingerprint(KEY, rehashed)
    assert other != mine
    assert groups_fingerprint(KEY, {**shared, "chor": GroupConfig("x")}) != mine
    nodes = [
        Node("a", "http://a", "serving", 0, 0, 0, mine),
        Node("b", "http://b", "serving", 0, 0, 0, mine),
        Node("c", "http://c", "serving", 0, 0, 0, other),
        Node("d", "http://d", "serving", 0, 0, 0, ""),  # an older node: says nothing
    ]
    assert other_groups(nodes, "a", mine) == 1
    assert other_groups(nodes[:2], "a", mine) == 0


async def test_a_waiting_connection_is_moved_to_the_owner_once() -> None:
    """The poll (`ClusterNode.move_waiting`) and a leader's placement can both move one
    waiting connection; a second replayed `join` would find its resume token spent and
    knock, so only the first moves it."""

    class Conn:  # what the relay uses of a Connection
        id = "c1"
        waiting: Waiting | None = Waiting("raum", "Ahorn", None, "funkclub")

    conn = Conn()
    hub = SimpleNamespace(waiting={"raum": {conn}})
    relay = Relay(cast(Any, None), cast(Any, hub), cast(Any, None))
    relay.routes["c1"] = Route(join='{"type": "join", "room": "raum"}')
    sent: list[tuple[str, str]] = []

    async def forward(conn: Any, route: Route, node_id: str, text: str) -> Any:
        sent.append((node_id, text))
        return None

    relay._forward = forward  # type: ignore[method-assign]
    await relay.move_waiting(cast(Any, conn), "owner-b")
    await relay.move_waiting(cast(Any, conn), "owner-b")
    assert sent == [("owner-b", '{"type": "join", "room": "raum"}')]
    assert conn.waiting is None and hub.waiting["raum"] == set()
