"""Three real nodes on a real Redis: placement, routing across nodes, and what Redis
holds (routing only, nothing in clear, nothing left when the rooms are gone).

Clients here speak the protocol (app/client.py) exactly as the console and the gateway
do; tests/cluster/test_cluster_browser.py drives real Chromium."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cluster_nodes import (
    CLUSTER_KEY,
    RedisServer,
    admit_newest,
    cluster_table,
    launch_node,
    room_count,
    start_redis,
    wait_nodes,
)
from kreis_server import GATEWAY_SECRET, GROUP, PASSWORD, ROOT, KreisServer, free_port, write_config

from app.client import KreisClient

pytestmark = pytest.mark.cluster


def metric(node: KreisServer, name: str) -> float:
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def leader(node: KreisServer, kind: str = "console") -> KreisClient:
    client = KreisClient(node.url, kind=kind)
    await client.connect()
    await client.request({"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok")
    return client


async def create(client: KreisClient, slug: str, dial_in: bool = False) -> dict[str, Any]:
    msg = {"type": "create_room", "slug": slug, "lobby": True, "password": None}
    return await client.request({**msg, "dial_in": dial_in}, "room_created")


def dump(redis: RedisServer) -> str:
    """Every key and every value in Redis, as one text."""
    lines = []
    for key in redis.scan_keys():
        kind = redis.cli("type", key).strip()
        if kind == "string":
            value = redis.cli("get", key)
        elif kind == "hash":
            value = redis.cli("hgetall", key)
        elif kind == "zset":
            value = redis.cli("zrange", key, "0", "-1", "withscores")
        else:
            value = redis.cli("dump", key)
        lines.append(f"{key} {kind} {value}")
    return "\n".join(lines)


async def test_new_rooms_spread_by_load(nodes: list[KreisServer]) -> None:
    before = [room_count(n) for n in nodes]
    console = await leader(nodes[0])
    try:
        for i in range(6):
            await create(console, f"verteilt-raum-{i}")
        await asyncio.sleep(0.5)
        placed = [room_count(n) - b for n, b in zip(nodes, before, strict=True)]
        print("rooms per node:", placed)
        assert sum(placed) == 6
        assert all(1 <= count <= 3 for count in placed), placed
        # a busy node gets no new room while others are idle
        busy = placed.index(max(placed))
        await create(console, "verteilt-raum-6")
        await asyncio.sleep(0.3)
        after = [room_count(n) - b for n, b in zip(nodes, before, strict=True)]
        assert after[busy] == placed[busy] or min(placed) == max(placed), (placed, after)
        await asyncio.sleep(2.5)  # one heartbeat: the totals include every node
        assert metric(nodes[1], "kreis_cluster_nodes") == 3
        assert metric(nodes[2], "kreis_cluster_rooms") >= 7
    finally:
        for i in range(7):
            await console.send({"type": "end_room", "room": f"verteilt-raum-{i}"})
        await console.close()


async def test_console_lists_all_nodes_and_admits_across(nodes: list[KreisServer]) -> None:
    owner_console = await leader(nodes[0])
    other = await leader(nodes[2])
    guest = KreisClient(nodes[1].url)
    slugs = [f"ueberall-raum-{i}" for i in range(4)]
    try:
        for slug in slugs:
            await create(owner_console, slug)
        counts = [room_count(n) for n in nodes]
        assert sum(1 for c in counts if c) >= 2, counts  # on more than one node
        await other.send({"type": "list_rooms"})
        listed = await other.expect("room_list")
        assert {r["slug"] for r in listed["rooms"]} >= set(slugs)
        # a room that does not live on node 2, entered by a guest on node 1
        target = slugs[0]
        await other.request({"type": "watch", "room": target}, "room_state")
        await guest.connect()
        await guest.send(
            {"type": "join", "room": target, "name": "Gast Eins", "invite": nodes[0].invite(target)}
        )
        assert (await guest.expect("lobby_status"))["state"] == "waiting"
        await admit_newest(other, target)  # the only one waiting
        joined = await guest.expect("joined")
        assert joined["room"] == target
    finally:
        for slug in slugs:
            await owner_console.send({"type": "end_room", "room": slug})
        for client in (guest, other, owner_console):
            await client.close()


async def test_dial_in_pin_reaches_a_room_on_another_node(nodes: list[KreisServer]) -> None:
    """The gateway's connection goes to node 0; the PIN's room lives on another node."""
    console = await leader(nodes[0])
    gateway = KreisClient(nodes[0].url, kind="gateway")
    made: list[str] = []
    try:
        pin = None
        for i in range(6):
            before = room_count(nodes[0])
            slug = f"telefon-raum-{i}"
            await create(console, slug, dial_in=True)
            made.append(slug)
            state = await console.expect("room_state")
            if room_count(nodes[0]) == before:  # placed on another node
                pin = state["dial_in_pin"]
                break
        assert pin, "every room landed on node 0"
        await asyncio.sleep(1)  # the owner writes a new PIN's key within half a second
        await gateway.connect()
        await gateway.request({"type": "gateway_auth", "secret": GATEWAY_SECRET}, "gateway_ok")
        await gateway.send({"type": "dial_in", "pin": pin, "caller": "…47"})
        assert (await gateway.expect("lobby_status"))["state"] == "waiting"
        knock = await console.expect("lobby_queue")
        while not knock["entrants"]:
            knock = await console.expect("lobby_queue")
        assert knock["entrants"][0]["kind"] == "phone"
    finally:
        for slug in made:
            await console.send({"type": "end_room", "room": slug})
        await console.close()
        await gateway.close()


def test_redis_with_appendonly_is_refused(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis", persisting=True)
    try:
        port = free_port()
        config = tmp_path / "kreis.toml"
        write_config(config, port, cluster_table(redis.url, port))
        result = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "KREIS_LANG": "en", "HOME": str(tmp_path)},
        )
        print(result.stderr)
        assert result.returncode != 0
        assert "appendonly" in result.stderr and "allow_persisting_redis" in result.stderr
        assert "Traceback" not in result.stderr
        # the operator's explicit override lets it run (and its node drains)
        config.unlink()
        write_config(config, port, cluster_table(redis.url, port, "allow_persisting_redis = true"))
        node = launch_node(tmp_path, redis)
        wait_nodes([node])
        try:
            asyncio.run(drain_alone(node))
        finally:
            node.stop()
    finally:
        redis.stop()


async def drain_alone(node: KreisServer) -> None:
    """SIGUSR1 drains a node: no new room there, and it exits when its last has ended."""
    console = await leader(node)
    try:
        await create(console, "vor-der-wartung")
        node.process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(3)  # a heartbeat: the registry says draining
        await console.send(
            {"type": "create_room", "slug": "nach-der-wartung", "lobby": True, "password": None}
        )
        refused = await console.expect("error")
        assert refused["code"] == "internal", refused  # no serving node anywhere
        assert metric(node, "kreis_node_draining") == 1
        assert node.process.poll() is None  # its room still runs
        await console.send({"type": "end_room", "room": "vor-der-wartung"})
    finally:
        await console.close()
    assert node.process.wait(timeout=20) == 0  # exits by itself once drained


async def test_redis_holds_nothing_in_clear_and_nothing_afterwards(
    nodes: list[KreisServer], redis: RedisServer
) -> None:
    """Runs last in this module: it kills every node at the end."""
    consoles = [await leader(n) for n in nodes]
    guests: list[KreisClient] = []
    secrets_in_clear = [GROUP, "Gisela Geheimname"]
    slugs = [f"klartext-raum-{i}" for i in range(3)]
    try:
        for console, slug in zip(consoles, slugs, strict=True):
            await create(console, slug, dial_in=True)
            state = await console.expect("room_state")
            assert state["dial_in_pin"]
            secrets_in_clear += [slug, state["dial_in_pin"]]
            guest = KreisClient(nodes[0].url)
            await guest.connect()
            await guest.send(
                {"type": "join", "room": slug, "name": "Gisela Geheimname",
                 "invite": nodes[0].invite(slug)}
            )  # fmt: skip
            await guest.expect("lobby_status")
            guests.append(guest)
        await asyncio.sleep(2.5)  # a heartbeat: every key is written
        text = dump(redis)
        print(text)
        assert "kreis:room:" in text and "kreis:pin:" in text and "kreis:group:" in text
        for secret in secrets_in_clear:
            assert secret.lower() not in text.lower(), secret
        assert CLUSTER_KEY not in text
        for console, slug in zip(consoles, slugs, strict=True):
            await console.send({"type": "end_room", "room": slug})
    finally:
        for client in [*guests, *consoles]:
            await client.close()
    # rooms ended: their keys go (released at once or expired within the TTL)
    deadline = time.monotonic() + 6 + 3
    while time.monotonic() < deadline:
        left = [k for k in redis.scan_keys() if not k.startswith("kreis:node")]
        if not left:
            break
        await asyncio.sleep(0.5)
    assert not left, left
    # the nodes die without a word: their own entries expire too
    for node in nodes:
        node.process.kill()
        node.process.wait(timeout=10)
    await asyncio.sleep(6 + 1)
    assert redis.scan_keys() == []
