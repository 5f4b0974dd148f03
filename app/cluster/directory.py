"""What Redis holds for a cluster: routing only, keyed by HMACs, every key with a TTL.

| key | type | value | written by |
|---|---|---|---|
| `kreis:nodes` | sorted set | node ids, score = expiry (ms) | every node, each heartbeat |
| `kreis:node:<id>` | hash | `address`, `state`, `rooms`, `participants`, `load`, `groups` | it |
| `kreis:room:<h(slug)>` | string | owner node id | `SET NX` by whoever places it, then the owner |
| `kreis:pin:<h(pin)>` | string | owner node id | the owner of a room with dial-in |
| `kreis:group:<h(group)>` | sorted set | nodes with a room of the group (score: expiry) | owners |

`h(x)` is HMAC-SHA256 under the cluster key (which never reaches Redis) of a kind tag
and `x`, so Redis never sees a slug, PIN or group, and one kind cannot be mistaken for
another. Node ids are random. Every key expires `ttl` seconds after the last refresh: a
dead node's rooms become free again, a Redis restart is rebuilt within one heartbeat,
and nothing outlives a room.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.cluster.errors import redis_persists, redis_unverifiable

log = logging.getLogger(__name__)

PREFIX = "kreis:"
NODES = PREFIX + "nodes"

# Refresh a key we own, or take it when nobody holds it; 0 when another node holds it.
_REFRESH = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 2 end
return 0
"""
# Delete a key only while it still names the given node.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Node:
    """One node as the registry shows it."""

    id: str
    address: str
    state: str
    """`serving` or `draining` (no new rooms)."""
    rooms: int
    participants: int
    load: int
    groups: str = ""
    """An HMAC of the node's `[groups]` (names and password hashes): every node must
    show the same, or invitation links and sign-ins fail when a room moves."""


@dataclass(frozen=True)
class Totals:
    """Cluster-wide counts for `/metrics`."""

    nodes: int
    rooms: int
    participants: int


class Directory:
    """The cluster's routing in Redis, seen from one node."""

    def __init__(self, redis: Redis, key: str, node_id: str, ttl_seconds: int) -> None:
        self.redis = redis
        self._key = key.encode()
        self.node_id = node_id
        self.ttl = ttl_seconds
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)

    def hashed(self, kind: str, value: str) -> str:
        mac = hmac.new(self._key, kind.encode() + b"\0" + value.encode(), hashlib.sha256)
        return f"{PREFIX}{kind}:{mac.hexdigest()[:32]}"

    # -- start: refuse a Redis that writes to disk

    async def check_memory_only(self, allow_persisting: bool) -> None:
        """Raises `ClusterError` naming the setting when Redis persists to disk."""
        try:
            save = (await self.redis.config_get("save")).get("save", "")
            appendonly = (await self.redis.config_get("appendonly")).get("appendonly", "no")
        except Exception as exc:  # redis.ResponseError: CONFIG renamed or not permitted
            if allow_persisting:
                log.warning("cannot check Redis persistence (%s); allowed by the config", exc)
                return
            raise redis_unverifiable(str(exc)) from None
        for setting, value, bad in (
            ("appendonly", str(appendonly), str(appendonly).lower() == "yes"),
            ("save", str(save), str(save).strip() != ""),
        ):
            if bad:
                if not allow_persisting:
                    raise redis_persists(setting, value)
                log.warning("Redis persists to disk (%s); allowed by the config", setting)

    # -- the node registry

    async def announce(self, node: Node) -> None:
        """This node's entry, refreshed every heartbeat."""
        key = PREFIX + "node:" + node.id
        expires = int((time.time() + self.ttl) * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "address": node.address,
                    "state": node.state,
                    "rooms": node.rooms,
                    "participants": node.participants,
                    "load": node.load,
                    "groups": node.groups,
                },
            )
            pipe.expire(key, self.ttl)
            pipe.zadd(NODES, {node.id: expires})
            pipe.expire(NODES, self.ttl)
            await pipe.execute()

    async def withdraw(self) -> None:
        """Gone from the registry at once (a clean shutdown)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(PREFIX + "node:" + self.node_id)
            pipe.zrem(NODES, self.node_id)
            await pipe.execute()

    async def forget(self, node_id: str) -> None:
        """Another node's process is gone (its port refuses): out of the registry now,
        so that no node places a room there while its entry would still live."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(PREFIX + "node:" + node_id)
            pipe.zrem(NODES, node_id)
            await pipe.execute()

    async def nodes(self) -> list[Node]:
        """Nodes whose entry has not expired."""
        now = int(time.time() * 1000)
        ids = [
            i.decode() if isinstance(i, bytes) else str(i)
            for i in await self.redis.zrangebyscore(NODES, now, "+inf")
        ]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for node_id in ids:
                pipe.hgetall(PREFIX + "node:" + node_id)
            entries: list[dict[Any, Any]] = await pipe.execute()
        found = []
        for node_id, entry in zip(ids, entries, strict=True):
            if not entry:
                continue
            fields = {_s(k): _s(v) for k, v in entry.items()}
            found.append(
                Node(
                    node_id,
                    fields.get("address", ""),
                    fields.get("state", "serving"),
                    int(fields.get("rooms", 0)),
                    int(fields.get("participants", 0)),
                    int(fields.get("load", 0)),
                    fields.get("groups", ""),
                )
            )
        return found

    async def node(self, node_id: str) -> Node | None:
        return next((n for n in await self.nodes() if n.id == node_id), None)

    async def least_loaded(self, exclude: Iterable[str] = ()) -> Node | None:
        """The serving node with the least load (ties broken at random), leaving out
        `exclude` (nodes known to be dead whose entries have not expired yet)."""
        skip = set(exclude)
        serving = [n for n in await self.nodes() if n.state == "serving" and n.id not in skip]
        if not serving:
            return None
        low = min(n.load for n in serving)
        return random.choice([n for n in serving if n.load == low])

    async def add_load(self, node_id: str, amount: int = 1) -> None:
        """Counts a room just placed on a node before its own next heartbeat does, so
        that rooms created in quick succession spread."""
        key = PREFIX + "node:" + node_id
        if await self.redis.exists(key):
            await self.redis.hincrby(key, "load", amount)

    async def totals(self, nodes: list[Node] | None = None) -> Totals:
        nodes = await self.nodes() if nodes is None else nodes
        return Totals(len(nodes), sum(n.rooms for n in nodes), sum(n.participants for n in nodes))

    # -- rooms, PINs, groups

    async def owner(self, slug: str) -> str | None:
        return _s_or_none(await self.redis.get(self.hashed("room", slug)))

    async def pin_owner(self, pin: str) -> str | None:
        return _s_or_none(await self.redis.get(self.hashed("pin", pin)))

    async def claim(self, slug: str, node_id: str) -> bool:
        """Places a room on `node_id` unless another node holds it (atomic, `SET NX`)."""
        return bool(await self.redis.set(self.hashed("room", slug), node_id, nx=True, ex=self.ttl))

    async def take_over(self, slug: str, dead_node: str) -> None:
        """Frees a room whose owner is gone, unless someone else already has."""
        await self._release(keys=[self.hashed("room", slug)], args=[dead_node])

    async def release(self, slug: str) -> None:
        await self._release(keys=[self.hashed("room", slug)], args=[self.node_id])

    async def release_pin(self, pin: str) -> None:
        await self._release(keys=[self.hashed("pin", pin)], args=[self.node_id])

    async def refresh(
        self, slugs: Iterable[str], pins: Iterable[str], groups: Iterable[str]
    ) -> list[str]:
        """Keeps this node's rooms, PINs and groups alive; returns the slugs another
        node holds (this node lost them, for example after Redis lost its data and
        another node claimed first)."""
        slugs, pins, groups = list(slugs), list(pins), set(groups)
        expires = int((time.time() + self.ttl) * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            for slug in slugs:
                await self._refresh(
                    keys=[self.hashed("room", slug)], args=[self.node_id, self.ttl], client=pipe
                )
            for pin in pins:
                await self._refresh(
                    keys=[self.hashed("pin", pin)], args=[self.node_id, self.ttl], client=pipe
                )
            for group in groups:
                key = self.hashed("group", group)
                pipe.zadd(key, {self.node_id: expires})
                pipe.zremrangebyscore(key, "-inf", int(time.time() * 1000))
                pipe.expire(key, self.ttl)
            results = await pipe.execute()
        return [slug for slug, result in zip(slugs, results, strict=False) if result == 0]

    async def add_group_node(self, group: str, node_id: str) -> None:
        """Lists a node under a group at once (its own heartbeat keeps it there)."""
        key = self.hashed("group", group)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {node_id: int((time.time() + self.ttl) * 1000)})
            pipe.expire(key, self.ttl, gt=True)
            pipe.expire(key, self.ttl, nx=True)
            await pipe.execute()

    async def group_nodes(self, group: str) -> list[str]:
        """Nodes that hold a live room of `group`."""
        now = int(time.time() * 1000)
        ids = await self.redis.zrangebyscore(self.hashed("group", group), now, "+inf")
        return [_s(i) for i in ids]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _s_or_none(value: Any) -> str | None:
    return None if value is None else _s(value)
