"""A real Redis and several real `kreis serve` nodes on loopback, for tests and bench.

`start_redis(tmp)` runs Debian's redis-server on a free port with the memory-only
settings of deploy/redis-kreis.conf; `start_nodes(tmp, redis, n)` starts `n` nodes,
each with its own port and UDP range and the same `[cluster]` key. All of it stays on
127.0.0.1 and is stopped by the caller.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kreis_server import KreisServer, free_port, start_server

CLUSTER_KEY = "test-cluster-key-0123456789abcdefghijklmnop"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


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

    def keys(self) -> list[str]:
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
        args, stdout=open(tmp / "redis.out", "wb"), stderr=subprocess.STDOUT  # noqa: SIM115
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


def start_node(
    tmp: Path, redis: RedisServer, rooms: dict[str, int] | None = None, extra: str = ""
) -> KreisServer:
    """One node. Its port is chosen first so that its `cluster.address` names it."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # start_server picks a free port itself unless the config exists: write it first.
    from kreis_server import write_config

    write_config(tmp / "kreis.toml", port, cluster_table(redis.url, port, extra), rooms)
    return start_server(tmp)


def start_nodes(
    tmp: Path, redis: RedisServer, count: int, rooms: dict[str, int] | None = None
) -> list[KreisServer]:
    nodes: list[KreisServer] = []
    try:
        for i in range(count):
            nodes.append(start_node(tmp / f"node{i}", redis, rooms))
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes
