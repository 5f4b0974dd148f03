"""Cluster benchmark: two nodes against one, and failover times.

    python -m bench.cluster [--steps 5,10,20,40] [--size 5] [--p99-ms 100] [--kills 10]

In a loopback-only namespace:

    unshare -n bash -c 'ip link set lo up; ip route add default dev lo; \
        .venv/bin/python -m bench.cluster'

Capacity: a real Redis and one, then two, real `kreis serve` nodes. For each step, a
leader starts that many rooms through node 0 (placement spreads them) and protocol
participants join them, all connected to node 0, which relays the signalling of rooms
it does not own. Every participant raises and lowers its hand twice a second and times
the round trip until the owner's `participants` broadcast shows it. The figure is the
most rooms each set-up holds with that p99 at or under `--p99-ms`. This measures the
signalling path (relay, placement, the owner's room logic), not media: bench/sfu.py
measures forwarding. On one machine the two nodes share its cores, so the ratio says
what the relay costs and whether a second process helps here, not what a second
machine adds.

Failover: three nodes; a room with a leader (speaking the console's protocol) and two
guests, all connected through a node that does not own the room. The owner is killed
with SIGKILL; the clock runs until both guests are back in the room (`joined`, through
their resume tokens, no lobby) on another node. Repeated `--kills` times (the killed
node is started again in between). Media (ICE and DTLS to the new owner) comes on top;
tests/cluster/test_cluster_browser.py measures that in Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "cluster")]

from cluster_nodes import (  # noqa: E402
    RedisServer,
    admit_newest,
    cluster_table,
    launch_node,
    shared_password_hash,
    start_redis,
    wait_nodes,
)
from kreis_server import GROUP, PASSWORD, KreisServer, free_port  # noqa: E402

from app.client import KreisClient  # noqa: E402
from bench.server import config_text  # noqa: E402


def node_config(tmp: Path, redis: RedisServer, index: int) -> None:
    """A node with a wide UDP range of its own (the tests' 40 ports are too few)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    low = 30000 + index * 2000
    rooms = {"empty_timeout_seconds": 3, "knock_timeout_seconds": 600, "resume_grace_seconds": 60}
    (tmp / "kreis.toml").write_text(
        config_text(
            port,
            rooms,
            (low, low + 1999),
            tmp / "logs",
            GROUP,
            shared_password_hash(),
            log_level="WARNING",
            extra=cluster_table(redis.url, port),
        ),
        encoding="utf-8",
    )


def start_cluster(tmp: Path, redis: RedisServer, count: int) -> list[KreisServer]:
    nodes = []
    for i in range(count):
        node_config(tmp / f"node{i}", redis, i)
        nodes.append(launch_node(tmp / f"node{i}", redis))
    wait_nodes(nodes)
    return nodes


def rooms_on(node: KreisServer) -> int:
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as answer:
        match = re.search(r"^kreis_rooms (\S+)$", answer.read().decode(), re.M)
    return int(float(match.group(1))) if match else -1


async def leader(url: str) -> KreisClient:
    client = KreisClient(url, kind="console")
    await client.connect()
    await client.request({"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok")
    return client


async def start_rooms(url: str, slugs: list[str]) -> KreisClient:
    """A leader that started the rooms and stays (empty rooms end after 3 s here)."""
    client = await leader(url)
    for slug in slugs:
        await client.request(
            {"type": "create_room", "slug": slug, "lobby": False, "password": None},
            "room_created",
        )
    return client


async def end_rooms(client: KreisClient, slugs: list[str]) -> None:
    for slug in slugs:
        await client.send({"type": "end_room", "room": slug})
    await asyncio.sleep(0.5)
    await client.close()


async def signalling_step(
    nodes: list[KreisServer], rooms: int, size: int, seconds: float, tag: str
) -> list[float]:
    """Latencies (s) of `hand` → the owner's `participants` broadcast seen by the sender,
    for every participant of every room, all connected through node 0."""
    slugs = [f"kapazitaet-{tag}-{i}" for i in range(rooms)]
    boss = await start_rooms(nodes[0].url, slugs)
    people: list[KreisClient] = []
    latencies: list[float] = []
    try:
        for slug in slugs:
            for k in range(size):
                client = KreisClient(nodes[0].url, kept=50)
                await client.connect()
                await client.request(
                    {"type": "join", "room": slug, "name": f"bench {k}"}, "joined", timeout=30
                )
                people.append(client)
        await asyncio.sleep(1)
        window_end = time.monotonic() + seconds

        async def wave(client: KreisClient) -> None:
            me = (client.latest("joined") or {}).get("id")
            raised = False
            while time.monotonic() < window_end:
                raised = not raised
                client.drain("participants")
                sent = time.monotonic()
                await client.send({"type": "hand", "raised": raised})
                while True:
                    msg = await client.expect("participants", timeout=30)
                    mine = [p for p in msg["participants"] if p["id"] == me]
                    if mine and mine[0]["hand"] == raised:
                        break
                latencies.append(time.monotonic() - sent)
                await asyncio.sleep(0.5)

        await asyncio.gather(*(wave(c) for c in people))
    finally:
        for client in people:
            await client.close()
        await end_rooms(boss, slugs)
    return latencies


def capacity_step(
    nodes: list[KreisServer], rooms: int, size: int, seconds: float, tag: str
) -> float:
    placed_before = [rooms_on(n) for n in nodes]
    latencies = sorted(asyncio.run(signalling_step(nodes, rooms, size, seconds, tag)))
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    p50 = statistics.median(latencies) * 1000
    print(
        f"  {len(nodes)} node(s), {rooms} rooms of {size}: {len(latencies)} round trips, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (rooms before: {placed_before})",
        flush=True,
    )
    time.sleep(3)  # every node's load in Redis is back to idle before the next step
    return p99


def capacity(
    tmp: Path, redis: RedisServer, args: argparse.Namespace
) -> dict[int, list[tuple[int, float]]]:
    results: dict[int, list[tuple[int, float]]] = {}
    for count in (1, 2):
        nodes = start_cluster(tmp / f"cap{count}", redis, count)
        try:
            series = []
            for rooms in args.steps:
                p99 = capacity_step(nodes, rooms, args.size, args.seconds, f"{count}-{rooms}")
                series.append((rooms, p99))
                if p99 > args.p99_ms * 3:
                    break  # far past the line: more rooms only take longer
            results[count] = series
        finally:
            for node in nodes:
                node.stop()
    return results


async def one_failover(nodes: list[KreisServer], index: int) -> tuple[float, int]:
    """Returns (seconds from kill to both guests back in the room, index of killed)."""
    slug = f"ausfall-{index}"
    creator = await leader(nodes[0].url)
    before = [rooms_on(n) for n in nodes]
    await creator.request(
        {"type": "create_room", "slug": slug, "lobby": True, "password": None}, "room_created"
    )
    owner = next(i for i, n in enumerate(nodes) if rooms_on(n) > before[i])
    entry = nodes[(owner + 1) % len(nodes)]
    console = await leader(entry.url)
    token: dict[str, str] = {}

    def keep(msg: dict[str, Any], who: str) -> None:
        if msg.get("type") in ("joined", "resume_token") and msg.get("room") == slug:
            token[who] = msg.get("resume") or msg.get("token") or token.get(who, "")

    console.on_message.append(lambda m: keep(m, "console"))
    await console.request({"type": "watch", "room": slug}, "room_state")
    await creator.close()  # the room is watched now: it does not end empty
    guests = []
    for name in ("Ahorn", "Birke"):
        guest = KreisClient(entry.url)
        await guest.connect()
        guest.on_message.append(lambda m, n=name: keep(m, n))
        await guest.send({"type": "join", "room": slug, "name": name})
        await admit_newest(console, slug)
        await guest.expect("joined")
        guests.append(guest)
    await asyncio.sleep(0.5)
    killed = time.monotonic()
    nodes[owner].process.kill()
    nodes[owner].process.wait(timeout=10)

    async def back(name: str, client: KreisClient, console_side: bool) -> KreisClient:
        await asyncio.wait_for(client.closed.wait(), 15)
        await client.close()
        while time.monotonic() - killed < 30:
            fresh = KreisClient(entry.url, kind="console" if console_side else "browser")
            try:
                await fresh.connect()
                fresh.on_message.append(lambda m: keep(m, name))
                if console_side:
                    await fresh.request(
                        {"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok"
                    )
                    await fresh.request(
                        {"type": "watch", "room": slug, "resume": token.get(name)}, "room_state"
                    )
                else:
                    await fresh.send(
                        {"type": "join", "room": slug, "name": name, "resume": token.get(name)}
                    )
                    reply = await fresh.expect("joined", "lobby_status", timeout=20)
                    if reply["type"] != "joined":
                        raise RuntimeError("knocked instead of coming back")
                return fresh
            except Exception:
                await fresh.close()
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{name} did not come back")

    results = await asyncio.gather(
        back("console", console, True),
        *(back(n, g, False) for n, g in zip(("Ahorn", "Birke"), guests, strict=True)),
    )
    elapsed = time.monotonic() - killed
    await results[0].send({"type": "end_room", "room": slug})
    for client in results:
        await client.close()
    return elapsed, owner


def failover(tmp: Path, redis: RedisServer, kills: int) -> list[float]:
    nodes = start_cluster(tmp / "failover", redis, 3)
    times: list[float] = []
    try:
        for i in range(kills):
            elapsed, killed = asyncio.run(one_failover(nodes, i))
            times.append(elapsed)
            print(f"  kill {i + 1}: back in {elapsed:.2f} s", flush=True)
            relaunched = launch_node(nodes[killed].config_path.parent, redis)
            wait_nodes([relaunched])
            nodes[killed] = relaunched
    finally:
        for node in nodes:
            node.stop()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="5,10,20,40", help="room counts to try")
    ap.add_argument("--size", type=int, default=5, help="participants per room")
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    ap.add_argument("--p99-ms", type=float, default=100.0)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--skip", default="", help="capacity or failover")
    args = ap.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    if not shutil.which("redis-server"):
        sys.exit("needs redis-server (Debian package redis-server)")
    tmp = Path(tempfile.mkdtemp(prefix="kreis-bench-cluster-"))
    redis = start_redis(tmp / "redis")
    try:
        if "capacity" not in args.skip:
            print(f"capacity: rooms of {args.size}, p99 line {args.p99_ms:.0f} ms", flush=True)
            results = capacity(tmp, redis, args)
            held = {
                count: max((r for r, p99 in series if p99 <= args.p99_ms), default=0)
                for count, series in results.items()
            }
            ratio = held[2] / held[1] if held[1] else float("nan")
            print(
                f"RESULT capacity: rooms held at p99 <= {args.p99_ms:.0f} ms: one node "
                f"{held[1]}, two nodes {held[2]} (ratio {ratio:.2f}); p99 per step: {results}",
                flush=True,
            )
        if "failover" not in args.skip:
            print(f"failover: {args.kills} kills", flush=True)
            times = failover(tmp, redis, args.kills)
            times.sort()
            p90 = times[int(0.9 * (len(times) - 1))]
            print(
                f"RESULT failover over {len(times)} kills: min {times[0]:.2f} s, median "
                f"{statistics.median(times):.2f} s, p90 {p90:.2f} s, "
                f"max {times[-1]:.2f} s; all: {', '.join(f'{t:.2f}' for t in times)}",
                flush=True,
            )
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
