"""`GET /metrics`: aggregate counts in Prometheus format, and who may read them.

Monitoring should tell an operator that the server is busy, never who is busy. So the
metrics are counts across the whole server only — no label ever carries a room slug, a
group, a name or an address:

| metric | type | meaning |
|---|---|---|
| `kreis_rooms` | gauge | live rooms |
| `kreis_participants{kind}` | gauge | admitted participants by `browser`, `phone`, `console` |
| `kreis_mic_on` | gauge | participants sending microphone audio |
| `kreis_camera_on` | gauge | participants sending camera video |
| `kreis_screen_shares` | gauge | participants sharing their screen |
| `kreis_lobby_waiting` | gauge | entrants waiting in a lobby |
| `kreis_forwarded_packets_total` | counter | RTP packets the SFU forwarded |
| `kreis_forwarded_bytes_total` | counter | RTP bytes the SFU forwarded |
| `kreis_cluster_nodes` | gauge | nodes alive in the registry (`[cluster]` only) |
| `kreis_cluster_rooms` | gauge | live rooms on all nodes (with `[cluster]` only) |
| `kreis_cluster_participants` | gauge | people in rooms and lobbies, all nodes (`[cluster]`) |
| `kreis_node_draining` | gauge | 1 while this node drains (with `[cluster]` only) |

The numbers come from a `snapshot()` callable read at scrape time (no copy of room
state is kept here); when it fails, `/metrics` answers 503 and the failure is logged,
never made-up zeros. Access: with `metrics.token` set, a request needs
`Authorization: Bearer <token>` (compared in constant time, 401 otherwise); with
`metrics.loopback_only` (the default) the client must be on this machine, after
trusted proxies are taken into account (403 otherwise). Both may be combined.

Deutsch: `/metrics` liefert nur Summen über den ganzen Server (Räume, Teilnehmende nach
Art, Mikrofon/Kamera an, Wartende) – nie Raumnamen, Namen oder Adressen.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.config import Config
from app.security import is_loopback_client

log = logging.getLogger(__name__)

Snapshot = Callable[[], Mapping[str, Any]]

PARTICIPANT_KINDS = ("browser", "phone", "console")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _count(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number >= 0 else 0.0


class KreisCollector(Collector):
    """Turns one `snapshot()` into metric families at every scrape."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        # A failing snapshot propagates: the handler answers 503 rather than zeros that
        # would tell monitoring "no rooms" when the truth is "unknown".
        stats: Mapping[str, Any] = self._snapshot()

        yield GaugeMetricFamily("kreis_rooms", "Live rooms.", value=_count(stats.get("rooms")))

        participants = GaugeMetricFamily(
            "kreis_participants", "Admitted participants by kind.", labels=["kind"]
        )
        by_kind = stats.get("participants") or {}
        for kind in PARTICIPANT_KINDS:  # fixed label values: nothing user-supplied
            participants.add_metric([kind], _count(by_kind.get(kind)))
        yield participants

        for name, key, help_text in (
            ("kreis_mic_on", "mic_on", "Participants sending microphone audio."),
            ("kreis_camera_on", "camera_on", "Participants sending camera video."),
            ("kreis_screen_shares", "screen_on", "Participants sharing their screen."),
            ("kreis_lobby_waiting", "lobby_waiting", "Entrants waiting in a lobby."),
        ):
            yield GaugeMetricFamily(name, help_text, value=_count(stats.get(key)))

        yield CounterMetricFamily(
            "kreis_forwarded_packets",
            "RTP packets forwarded by the SFU.",
            value=_count(stats.get("forwarded_packets")),
        )
        yield CounterMetricFamily(
            "kreis_forwarded_bytes",
            "RTP bytes forwarded by the SFU.",
            value=_count(stats.get("forwarded_bytes")),
        )
        cluster = stats.get("cluster")
        if isinstance(cluster, Mapping):
            for name, key, help_text in (
                ("kreis_cluster_nodes", "nodes", "Cluster nodes alive in the registry."),
                ("kreis_cluster_rooms", "rooms", "Live rooms on all cluster nodes."),
                ("kreis_cluster_participants", "participants", "People on all cluster nodes."),
                ("kreis_node_draining", "draining", "1 while this node drains."),
            ):
                yield GaugeMetricFamily(name, help_text, value=_count(cluster.get(key)))


def build_registry(snapshot: Snapshot) -> CollectorRegistry:
    """A registry of its own: no process or platform collectors, only Kreis counts."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KreisCollector(snapshot))
    return registry


def render_metrics(snapshot: Snapshot) -> bytes:
    """The Prometheus text exposition of one snapshot (for tests and the handler)."""
    return generate_latest(build_registry(snapshot))


def _token_matches(request: web.BaseRequest, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def metrics_handler(config: Config, snapshot: Snapshot) -> Callable[[web.Request], Any]:
    """The `GET /metrics` handler with the configured access rules."""
    token = config.metrics.token
    loopback_only = config.metrics.loopback_only
    registry = build_registry(snapshot)
    if not token and not loopback_only:
        log.warning("metrics are readable by anyone who can reach the server")

    async def get_metrics(request: web.Request) -> web.Response:
        if loopback_only and not is_loopback_client(request, config):
            return web.Response(status=403, text="forbidden\n")
        if token and not _token_matches(request, token):
            return web.Response(
                status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            body = generate_latest(registry)
        except Exception:
            log.exception("metrics snapshot failed; answering 503")
            return web.Response(status=503, text="metrics unavailable\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    return get_metrics


def setup_metrics(app: web.Application, config: Config, snapshot: Snapshot) -> None:
    """Adds `GET /metrics` to `app`. `snapshot()` returns the aggregate counts:
    `{"rooms", "participants": {kind: n}, "mic_on", "camera_on", "screen_on",
    "lobby_waiting", "forwarded_packets", "forwarded_bytes"}`; missing keys count 0.
    """
    app.router.add_get("/metrics", metrics_handler(config, snapshot), allow_head=False)
