"""Several `kreis serve` nodes as one service, routed through Redis (docs/cluster.md).

Without a `[cluster]` table none of this is imported and the server runs alone. With
one, `setup_cluster(app, hub, config)` (called by `app/server.py`) adds:

- `node.ClusterNode`: the heartbeat that keeps this node's registry entry and its rooms'
  keys alive, placement of new rooms on the least-loaded serving node, freeing the
  rooms of a dead owner, handing waiting connections to a room's owner, and drain.
- `directory.Directory`: every Redis key and script; routing only, keyed by HMACs
  under the cluster key, every key with a short TTL. Refuses a Redis that persists.
- `relay.Relay`: the entry side of each client connection: forwards a client's
  signalling to the owner node of its room over a per-owner WebSocket link.

What it does not know: names, lobbies, chat, passwords and media stay in the owner
node's memory (`app/hub.py`, `sfu/`); Redis never sees a slug, PIN, group or name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from app.cluster.node import ClusterNode, install_drain_signal
from app.cluster.relay import RELAY_HEADER, verify_relay

if TYPE_CHECKING:
    from app.config import Config
    from app.hub import Hub

NODE_KEY = web.AppKey("cluster_node", ClusterNode)

__all__ = ["NODE_KEY", "RELAY_HEADER", "ClusterNode", "setup_cluster", "verify_relay"]


def setup_cluster(app: web.Application, hub: Hub, config: Config) -> ClusterNode:
    """Makes this server a cluster node: started after the hub, stopped before it."""
    assert config.cluster is not None
    node = ClusterNode(config.cluster, hub)
    app[NODE_KEY] = node

    async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
        assert config.cluster is not None
        await node.start(config.cluster.allow_persisting_redis)
        install_drain_signal(node)
        yield
        await node.stop()

    app.cleanup_ctx.append(cluster_ctx)
    return node
