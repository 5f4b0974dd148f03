"""A real Redis and several real `kreis serve` nodes on loopback, for tests and bench.

`start_redis(tmp)` runs Debian's redis-server on a free port with the memory-only
settings of deploy/redis-kreis.conf; `start_nodes(tmp, redis, n)` starts `n` nodes,
each with its own port and UDP range and the same `[cluster]` key. All of it stays on
127.0.0.1 and is stopped by the caller.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kreis_server import PASSWORD, ROOT, KreisServer, free_port, wait_healthy, write_config

from app.client import KreisClient

CLUSTER_KEY = "test-cluster-key-0123456789abcdefghijklmnop"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_START_TIMEOUT = 120
"""Generous: three nodes importing aiortc at once on a busy CI machine."""


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        return subprocess.run(
            [REDIS_CLI, "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout

    def scan_keys(self) -> list[str]:
        return [k for k in self.cli("--scan").splitlines() if k]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_redis(tmp: Path, persisting: bool = False) -> RedisServer:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(tmp),
        "--save", "",
        "--appendonly", "yes" if persisting else "no",
        "--repl-diskless-sync", "yes",
    ]  # fmt: skip
    process = subprocess.Popen(
        args,
        stdout=open(tmp / "redis.out", "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
    )
    server = RedisServer(port, process)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if server.cli("ping").strip() == "PONG":
                return server
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("redis-server did not start:\n" + (tmp / "redis.out").read_text())


def cluster_table(redis_url: str, port: int, extra: str = "") -> str:
    return f"""
[cluster]
redis_url = "{redis_url}"
key = "{CLUSTER_KEY}"
address = "http://127.0.0.1:{port}"
{extra}
"""


@functools.cache
def shared_password_hash() -> str:
    """One hash of the group password for every node: like the one `kreis.toml` that
    docs/cluster.md copies to each machine. (Hashed per node, each salt differs, and
    so would each node's invitation codes: a room moved to another node would turn
    its invited guests away.)"""
    from app.passwords import hash_password

    return hash_password(PASSWORD)


def launch_node(
    tmp: Path, redis: RedisServer, rooms: dict[str, int] | None = None, extra: str = ""
) -> KreisServer:
    """Starts one node without waiting for it (see `wait_nodes`); its port is chosen
    first so that its `cluster.address` names it."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "kreis.toml"
    if config.exists():  # a restart keeps its config and port
        port = int(tomllib.loads(config.read_text())["server"]["port"])
    else:
        port = free_port()
        write_config(config, port, cluster_table(redis.url, port, extra), rooms)
        text = re.sub(
            r'^password_hash = ".*"$',
            f'password_hash = "{shared_password_hash()}"',
            config.read_text(),
            count=1,
            flags=re.M,
        )
        config.write_text(text, encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("CONFIG", "STATE", "DATA", "CACHE"):
        env[f"XDG_{name}_HOME"] = str(tmp / f"xdg-{name.lower()}")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=open(tmp / "server.out", "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
    )
    return KreisServer(f"http://127.0.0.1:{port}", port, config, tmp / "logs", process)


def wait_nodes(nodes: list[KreisServer], timeout: float = NODE_START_TIMEOUT) -> None:
    try:
        for node in nodes:
            wait_healthy(node.url, node.process, node.config_path.parent / "server.out", timeout)
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def start_nodes(
    tmp: Path, redis: RedisServer, count: int, rooms: dict[str, int] | None = None
) -> list[KreisServer]:
    """Started side by side: each node takes seconds to import its SFU."""
    nodes = [launch_node(tmp / f"node{i}", redis, rooms) for i in range(count)]
    wait_nodes(nodes)
    return nodes


async def admit_newest(leader: KreisClient, slug: str, timeout: float = 10) -> str:
    """Waits for a lobby queue with someone in it, admits its newest entrant and returns
    that entrant's id."""
    while True:
        queue = await leader.expect("lobby_queue", timeout=timeout)
        if queue["entrants"]:
            entrant = str(queue["entrants"][-1]["id"])
            await leader.send({"type": "admit", "room": slug, "id": entrant})
            return entrant


def room_count(node: KreisServer) -> int:
    """Live rooms on `node`, from its /metrics."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(r"^kreis_rooms (\S+)$", text, re.M)
    assert match, text
    return int(float(match.group(1)))
