"""Benchmarks for Kreis: SFU forwarding throughput and latency, browser join time,
impaired networks, the cluster and the dial-in gateway.

Run them as modules (`python -m bench.sfu`, `python -m bench.join`) inside a
loopback-only network namespace; they never run in the test suite. Figures are
printed, and docs/performance.md records them with the commands that made them.
`own_namespace` lets a benchmark make that namespace itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

NETNS_MARK = "KREIS_BENCH_NETNS"


def own_namespace(module: str) -> None:
    """Runs `python -m module` again inside a new network namespace that has only
    loopback (as default route too), and exits with its status; returns at once when
    already inside one (iptables and tc there touch nothing but the benchmark)."""
    if os.environ.get(NETNS_MARK) == "1":
        return
    env = dict(os.environ, **{NETNS_MARK: "1"})
    network = "ip link set lo up && ip route add default dev lo"
    script = f"{network} && exec {sys.executable} -m {module}"
    sys.exit(subprocess.call(["unshare", "-n", "--", "bash", "-c", script], env=env))
