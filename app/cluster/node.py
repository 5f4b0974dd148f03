"""This server as one node of a cluster: its heartbeat, placement, failover and drain.

`ClusterNode.start()` connects to Redis, refuses a Redis that persists to disk, and
announces the node; then every `heartbeat_seconds` it refreshes its registry entry
(address, load, serving or draining) and the keys of its live rooms, PINs and groups,
releases the keys of rooms that ended, and caches the cluster totals for `/metrics`.
A faster loop writes new rooms and PINs at once and hands connections that wait here
for a room ("waiting for the leader") to its owner as soon as it opens elsewhere.

Failover: a room's owner is *live* while its registry entry exists and its signalling
port answers. When an entry finds the owner's port refusing connections (the process
is gone), it frees the room at once instead of waiting for the key to expire (a
machine that vanished without a word is noticed by the TTL instead). The next client
to come back then places the room on the least-loaded serving node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import signal
import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import aiohttp
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from app.cluster.directory import Directory, Node, Totals
from app.cluster.errors import redis_unreachable
from app.cluster.relay import Relay

if TYPE_CHECKING:
    from app.config import ClusterConfig, GroupConfig
    from app.hub import Hub

log = logging.getLogger(__name__)

QUICK_SECONDS = 0.5
PROBE_TIMEOUT = 1.0


def connect_redis(config: ClusterConfig) -> Redis:
    """A Redis client from `[cluster]`: URL (TLS with `rediss://`) or Sentinel."""
    kwargs: dict[str, object] = {"socket_timeout": 3, "socket_connect_timeout": 3}
    if config.redis_url.startswith("rediss://") and config.tls_ca:
        kwargs["ssl_ca_certs"] = config.tls_ca
    if config.sentinels:
        from urllib.parse import urlparse

        url = urlparse(config.redis_url)
        hosts = []
        for entry in config.sentinels:
            host, _, port = entry.rpartition(":")
            hosts.append((host.strip("[]"), int(port)))
        extra: dict[str, object] = dict(kwargs)
        if url.password:
            extra["password"] = url.password
        if url.scheme == "rediss":
            extra["ssl"] = True
        sentinel = Sentinel(hosts, sentinel_kwargs={"socket_timeout": 3}, **extra)  # type: ignore[no-untyped-call]
        master: Redis = sentinel.master_for(config.sentinel_master)
        return master
    return Redis.from_url(config.redis_url, **kwargs)  # type: ignore[arg-type]


class ClusterNode:
    """One `kreis serve` in a cluster."""

    def __init__(self, config: ClusterConfig, hub: Hub, redis: Redis | None = None) -> None:
        self.config = config
        self.hub = hub
        self.node_id = secrets.token_hex(8)
        self.redis = redis if redis is not None else connect_redis(config)
        self.directory = Directory(self.redis, config.key, self.node_id, config.ttl_seconds)
        self.state = "serving"
        self.totals = Totals(0, 0, 0)
        self.on_drained: Callable[[], None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.relay: Relay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._held: set[str] = set()
        self._held_pins: set[str] = set()
        self._dead: dict[str, float] = {}
        self.groups = groups_fingerprint(config.key, hub.config.groups)
        self._warned_groups = False

    # -- lifecycle

    async def start(self, allow_persisting: bool) -> None:
        try:
            await self.redis.ping()
        except Exception as exc:
            raise redis_unreachable(str(exc)) from None
        await self.directory.check_memory_only(allow_persisting)
        self._session = aiohttp.ClientSession()
        self.relay = Relay(self, self.hub, self._session)
        await self.heartbeat()
        self._tasks = [
            asyncio.create_task(self._every(self.config.heartbeat_seconds, self.heartbeat)),
            asyncio.create_task(self._every(QUICK_SECONDS, self.quick_check)),
        ]
        log.info("cluster node %s up", self.node_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            for slug in self._held:
                await self.directory.release(slug)
            await self.directory.withdraw()
        if self._session is not None:
            await self._session.close()
        await self.redis.aclose()

    async def _every(self, seconds: float, job: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = job()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("cluster %s failed; trying again", getattr(job, "__name__", "job"))

    # -- the heartbeat

    def load(self) -> tuple[int, int, int]:
        """(rooms, participants, load): the load counts rooms and everyone in them."""
        rooms = self.hub.store.all()
        people = sum(len(r.participants) + len(r.lobby) for r in rooms)
        return len(rooms), people, len(rooms) + people

    async def heartbeat(self) -> None:
        rooms, people, load = self.load()
        await self.directory.announce(
            Node(
                self.node_id,
                self.config.address,
                self.state,
                rooms,
                people,
                load,
                self.groups,
            )
        )
        live = self.hub.store.all()
        slugs = {r.slug for r in live}
        pins = {r.dial_in_pin for r in live if r.dial_in_pin and r.settings.dial_in}
        lost = await self.directory.refresh(slugs, pins, {r.group for r in live})
        if lost:
            log.warning("%d room(s) here are held by another node in Redis", len(lost))
        for slug in self._held - slugs:
            await self.directory.release(slug)
        for pin in self._held_pins - pins:
            await self.directory.release_pin(pin)
        self._held, self._held_pins = slugs, pins
        nodes = await self.directory.nodes()
        self.totals = await self.directory.totals(nodes)
        others = other_groups(nodes, self.node_id, self.groups)
        if others and not self._warned_groups:
            log.warning(
                "%d other node(s) have other [groups] settings (a group password hashed "
                "on each machine?): invitation links and sign-ins fail when a room moves "
                "between them; give every node the same kreis.toml",
                others,
            )
        self._warned_groups = bool(others)
        if self.state == "draining" and not live:
            log.info("drained: no rooms left, stopping")
            if self.on_drained is not None:
                self.on_drained()

    def drain(self) -> None:
        """No new rooms here; the node stops when its last room has ended."""
        if self.state != "draining":
            log.info("draining: no new rooms on this node")
        self.state = "draining"

    # -- placement and failover

    async def place(self, slug: str) -> str | None:
        """Claims a new room for the least-loaded serving node (never one just found
        dead: its registry entry outlives it by up to a TTL); the owner's id, or None
        when no node serves."""
        now = time.monotonic()
        dead = [node_id for node_id, until in self._dead.items() if until > now]
        target = await self.directory.least_loaded(exclude=dead)
        if target is None:
            return None
        if await self.directory.claim(slug, target.id):
            await self.directory.add_load(target.id)
            return target.id
        return await self.live_owner(slug)

    async def live_owner(self, slug: str) -> str | None:
        """The node that owns `slug`, if it is alive; a dead owner's claim is freed."""
        owner = await self.directory.owner(slug)
        if owner is None or owner == self.node_id:
            return owner
        if await self._alive(owner):
            return owner
        await self.directory.take_over(slug, owner)
        return None

    async def live_owner_of_pin(self, pin: str) -> str | None:
        owner = await self.directory.pin_owner(pin)
        if owner is None or owner == self.node_id or await self._alive(owner):
            return owner
        return None

    async def suspect(self, node_id: str) -> None:
        """A link to the node failed: remember it as dead for a moment if it is."""
        self._dead.pop(node_id, None)
        await self._alive(node_id)

    async def _alive(self, node_id: str) -> bool:
        if self._dead.get(node_id, 0) > time.monotonic():
            return False
        node = await self.directory.node(node_id)
        if node is None:
            return False
        assert self._session is not None
        try:
            async with self._session.get(
                node.address + "/healthz", timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
            ) as answer:
                return answer.status == 200
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                # The process is gone (its port refuses): free its rooms now.
                self._dead[node_id] = time.monotonic() + self.config.ttl_seconds
                await self.directory.forget(node_id)
                return False
            return True  # unreachable is not dead: the TTL decides
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError):
            return True

    async def quick_check(self) -> None:
        """Between heartbeats: a room or PIN that appeared or went here is written at
        once (a caller may dial a new PIN through another node a second later), and
        waiting connections move to their room's owner."""
        live = self.hub.store.all()
        slugs = {r.slug for r in live}
        pins = {r.dial_in_pin for r in live if r.dial_in_pin and r.settings.dial_in}
        if slugs != self._held or pins != self._held_pins:
            await self.heartbeat()
        await self.move_waiting()

    async def move_waiting(self) -> None:
        """Connections waiting here for a room that opened on another node knock there."""
        if self.relay is None:
            return
        for slug, conns in list(self.hub.waiting.items()):
            if not conns or self.hub.store.get(slug) is not None:
                continue
            owner = await self.live_owner(slug)
            if owner is None or owner == self.node_id:
                continue
            for conn in list(conns):
                await self.relay.move_waiting(conn, owner)


def groups_fingerprint(key: str, groups: Mapping[str, GroupConfig]) -> str:
    """What every node of one cluster must share of `[groups]`: an HMAC under the
    cluster key (Redis sees no group name or hash) of each group and its password hash.
    Invitation codes are made from the hash, so nodes that hashed one password each
    with their own salt turn away each other's invited guests."""
    mac = hmac.new(key.encode(), b"kreis-groups", hashlib.sha256)
    for name in sorted(groups):
        mac.update(b"\0" + name.encode() + b"\0" + groups[name].password_hash.encode())
    return mac.hexdigest()[:32]


def other_groups(nodes: list[Node], node_id: str, mine: str) -> int:
    """How many other live nodes show another `[groups]` fingerprint than `mine`."""
    return sum(1 for n in nodes if n.id != node_id and n.groups and n.groups != mine)


def install_drain_signal(node: ClusterNode) -> None:
    """SIGUSR1 drains this node (`systemctl kill -s USR1 kreis`, or `kreis drain`)."""
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, node.drain)
