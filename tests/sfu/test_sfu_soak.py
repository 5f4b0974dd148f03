"""The churn soak of the SFU workers (bench/soak.py) as a test, marker `soak`.

A real `kreis serve` with two SFU worker processes; light participants (real ICE,
DTLS, SRTP; no codec) join, publish, get every other's media (checked per batch),
and leave, half of them abruptly, for 10 minutes by default (KREIS_SOAK_SECONDS
shortens it locally). Passes when every batch's media arrived, no server log holds a
traceback or a worker death, and each worker's RSS after the last round is within
5 MB of its RSS after the first (it comes back since the workers trim their heap once
participants have left, sfu/memory.py). Bounded: the duration plus one last batch
(bench/soak.py MEDIA_TIMEOUT) and the server's start and stop.
"""

from __future__ import annotations

import os

import pytest

from bench.soak import run

SECONDS = float(os.environ.get("KREIS_SOAK_SECONDS", "600"))
TOLERANCE_MB = 5.0

# The soak outlasts the suite's default timeout (300 s): the duration, one last batch,
# and the server's start and stop.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(int(SECONDS) + 300)]


def test_sfu_worker_memory_comes_back_after_churn() -> None:
    seconds = SECONDS
    summary = run(seconds, rounds=5, tolerance_mb=TOLERANCE_MB)
    print("soak:", {k: v for k, v in summary.items() if k != "rss_mb"})
    print("worker RSS MB per round:", summary["rss_mb"])
    assert summary["media_checks"] >= 5
    assert summary["media_failures"] == []
    assert summary["log_problems"] == []
    for pid, growth in summary["growth_mb"].items():
        assert growth <= TOLERANCE_MB, (pid, growth, summary["kb_per_session"])
