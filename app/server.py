"""The aiohttp application: pages, static files, the signalling socket, health.

`create_app(config)` builds the application; shared objects live under typed
`web.AppKey`s, and the hub and SFU start and stop in `cleanup_ctx`. `serve()` runs it,
and on SIGTERM tells every client the server is restarting before it exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from app.config import Config
from app.hub import Hub
from app.logsetup import access_log_options, configure_logging
from app.metrics import setup_metrics
from app.names import slug_problem
from app.protocol import ServerRestart
from app.rooms import stats as room_stats
from app.security import client_address, setup_security

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CONFIG_KEY = web.AppKey("config", Config)
HUB_KEY = web.AppKey("hub", Hub)
RESTART_NOTICE_SECONDS = 5


async def healthz(request: web.Request) -> web.Response:
    """Up or not, for load balancers and monitoring. No counts: anyone may ask, and
    how many rooms are live is for `/metrics`, which is restricted. While an SFU
    worker is down (and being restarted) media is false and status "degraded"."""
    hub = request.app[HUB_KEY]
    media = hub.media is not None and hub.media.healthy
    return web.json_response({"status": "ok" if media else "degraded", "media": media})


async def websocket(request: web.Request) -> web.StreamResponse:
    from app.signalling import handle_ws

    hub = request.app[HUB_KEY]
    address = client_address(request, hub.config)
    cluster = hub.config.cluster
    if cluster is None:
        return await handle_ws(request, hub, address)
    from app.cluster import NODE_KEY, RELAY_HEADER, verify_relay

    header = request.headers.get(RELAY_HEADER)
    if header is not None:  # another node's link: it speaks for the client's address
        relayed = verify_relay(cluster.key, header, time.time())
        if relayed is None:
            raise web.HTTPForbidden()
        # signed in on the entry (which checked the password): a group known here
        group = relayed.group if relayed.group in hub.config.groups else None
        return await handle_ws(request, hub, relayed.address, group=group)
    return await handle_ws(request, hub, address, request.app[NODE_KEY].relay)


async def index_page(request: web.Request) -> web.StreamResponse:
    return page("index.html")


async def room_page(request: web.Request) -> web.StreamResponse:
    if slug_problem(request.match_info["slug"]):
        raise web.HTTPNotFound()
    return page("room.html")


def page(name: str) -> web.StreamResponse:
    path = STATIC / name
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-store"})


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    try:
        from app.media import Media

        hub.media = Media(hub.config)
    except ImportError as exc:
        log.warning("media (SFU) not available: %s", exc)
    if hub.media is not None:
        await hub.media.start()
    await hub.start()
    yield
    await hub.stop()
    if hub.media is not None:
        await hub.media.stop()


async def _tell_clients_restart(app: web.Application) -> None:
    hub = app[HUB_KEY]
    for conn in list(hub.connections):
        conn.send(ServerRestart(RESTART_NOTICE_SECONDS))
        conn.close_soon(1012)
    # Give the writers a moment to flush the notice before aiohttp closes the sockets.
    await asyncio.sleep(0.2)


def snapshot(hub: Hub) -> dict[str, object]:
    """Aggregate counts for /metrics."""
    counts: dict[str, object] = dict(room_stats(hub.store))
    if hub.media is not None:
        counts.update(hub.media.stats())
    return counts


def cluster_snapshot(hub: Hub, app: web.Application) -> dict[str, object]:
    """The node's counts plus the cluster's totals (from its last heartbeat)."""
    from app.cluster import NODE_KEY

    counts = snapshot(hub)
    node = app[NODE_KEY]
    counts["cluster"] = {
        "nodes": node.totals.nodes,
        "rooms": node.totals.rooms,
        "participants": node.totals.participants,
        "draining": node.state == "draining",
    }
    return counts


def create_app(config: Config) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    setup_security(app, config)
    app[CONFIG_KEY] = config
    hub = Hub(config)
    app[HUB_KEY] = hub
    app.cleanup_ctx.append(_hub_ctx)
    app.on_shutdown.append(_tell_clients_restart)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/", index_page)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    if config.cluster is not None:
        from app.cluster import setup_cluster

        setup_cluster(app, hub, config)
        setup_metrics(app, config, lambda: cluster_snapshot(hub, app))
    else:
        setup_metrics(app, config, lambda: snapshot(hub))
    app.router.add_get("/{slug}", room_page)
    return app


def tls_context(config: Config) -> ssl.SSLContext | None:
    if not (config.server.tls_cert and config.server.tls_key):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.server.tls_cert, config.server.tls_key)
    return ctx


async def serve(
    config: Config,
    config_path: Path | None = None,
    build: Callable[[Config], web.Application] = create_app,
) -> None:
    """Runs the server until SIGTERM or SIGINT. `build` makes the application; only
    the test harness passes another (tests/serve_with_hooks.py)."""
    configure_logging(config)
    app = build(config)
    runner = web.AppRunner(app, handle_signals=False, **access_log_options())
    await runner.setup()
    site = web.TCPSite(
        runner, config.server.host, config.server.port, ssl_context=tls_context(config)
    )
    await site.start()
    log.info("serving on port %d", config.server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.cluster is not None:
        from app.cluster import NODE_KEY

        app[NODE_KEY].on_drained = stop.set  # a drained node exits by itself
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
