"""Why a node refuses to join the cluster: errors a person reads (English and German)."""

from __future__ import annotations

from app.errors import KreisError


class ClusterError(KreisError):
    """`kreis serve` cannot run as a cluster node; the message says what to change."""


def redis_persists(setting: str, value: str) -> ClusterError:
    """Redis writes to disk: routing keys (HMACs of room names) would outlive a restart."""
    return ClusterError(
        "redis_persists",
        f"Redis persists to disk ({setting} = {value!r}); Kreis keeps nothing about a "
        f'meeting on disk. Use deploy/redis-kreis.conf (save "", appendonly no), or set '
        f"cluster.allow_persisting_redis = true to run anyway.",
        f"Redis schreibt auf die Festplatte ({setting} = {value!r}); Kreis speichert "
        f"nichts über ein Treffen auf Platte. Bitte deploy/redis-kreis.conf verwenden "
        f'(save "", appendonly no) oder cluster.allow_persisting_redis = true setzen.',
    )


def redis_unverifiable(reason: str) -> ClusterError:
    """CONFIG GET is not allowed (a managed or locked-down Redis): cannot check."""
    return ClusterError(
        "redis_unverifiable",
        f"cannot check whether Redis persists to disk (CONFIG GET refused: {reason}). "
        "Allow CONFIG GET for Kreis's user, or set cluster.allow_persisting_redis = true.",
        f"kann nicht prüfen, ob Redis auf die Festplatte schreibt (CONFIG GET abgelehnt: "
        f"{reason}). Bitte CONFIG GET erlauben oder cluster.allow_persisting_redis = true "
        "setzen.",
    )


def redis_unreachable(reason: str) -> ClusterError:
    return ClusterError(
        "redis_unreachable",
        f"cannot reach Redis at cluster.redis_url: {reason}",
        f"Redis unter cluster.redis_url nicht erreichbar: {reason}",
    )
