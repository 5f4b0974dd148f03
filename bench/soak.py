"""Churn soak of the real server's SFU workers: does their memory come back?

Starts `kreis serve` with two SFU worker processes and, for a set duration, lets light
participants (bench/lightclient.py: real signalling, ICE, DTLS and SRTP, no codec)
come and go in a few rooms: each batch joins, publishes audio and video, sends media
until every participant has received every other's two streams, then leaves, half of
them politely (`leave`) and half abruptly (sockets and peer connections dropped). The
time is cut into rounds; after each round every participant is gone (the server's
/metrics counts nobody), the workers idle a few seconds, and their resident memory
(VmRSS) is read.

    python -m bench.soak --seconds 600 --rounds 5

It prints each round's sessions and each worker's RSS, the growth per session, and
whether the RSS after the last round is within --tolerance-mb (default 5) of the RSS
after the first (the first round warms caches up), whether every batch's media
arrived, and whether the server's log holds a traceback or an "exited" error. Exit
status 0 when all three hold. All traffic is on loopback; every wait is bounded.
tests/sfu/test_sfu_soak.py (marker `soak`) runs it as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import Fleet
from bench.lightclient import LightParticipant
from bench.server import CLIENT_PORTS, BenchServer, leader, start
from tests.kreis_server import worker_pids

SETTLE_SECONDS = 5.0
"""Idle time after a round (once the server counts nobody in a room) before the
workers' memory is read."""
EMPTY_TIMEOUT = 30.0
"""Seconds the server may take to see every participant of a round gone."""
MEDIA_TIMEOUT = 60.0
"""Seconds a batch may take to get every stream to every participant."""


@dataclass
class Round:
    sessions: int = 0
    abrupt: int = 0
    media_checks: int = 0
    """Batches in which every participant received every other's audio and video."""
    media_failures: list[str] = field(default_factory=list)
    rss_mb: dict[int, float] = field(default_factory=dict)


def participants(url: str) -> float:
    """Admitted participants the server counts (its /metrics, every kind)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.findall(r"^kreis_participants(?:\{[^}]*\})? (\S+)$", text, re.M)
    return sum(float(v) for v in found)


async def wait_empty(url: str) -> None:
    """Until the server counts nobody in a room (abrupt leavers take a moment), bounded;
    the workers are idle from then on."""
    deadline = time.monotonic() + EMPTY_TIMEOUT
    while await asyncio.to_thread(participants, url) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def batch(url: str, slug: str, size: int, first: int, abrupt: bool) -> tuple[int, int]:
    """One room's batch: join, publish, media to everyone, leave. Returns (sessions,
    abrupt leaves); raises RuntimeError when media did not reach everyone."""
    fleet = Fleet()
    people = [
        LightParticipant(url, slug, first + k, fleet.receipts, CLIENT_PORTS) for k in range(size)
    ]
    dropped = 0
    try:
        for p in people:
            await asyncio.wait_for(p.join(), MEDIA_TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*(p.publish() for p in people)), MEDIA_TIMEOUT)
        await asyncio.gather(*(p.wait_up_connected(MEDIA_TIMEOUT) for p in people))
        fleet.streams = [p.stream for p in people if p.stream is not None]
        fleet.start_sending()
        want = 2 * (size - 1)
        deadline = time.monotonic() + MEDIA_TIMEOUT
        while not all(len(p.seen) >= want for p in people):
            if time.monotonic() > deadline:
                seen = [len(p.seen) for p in people]
                raise RuntimeError(f"media did not reach everyone: {seen} of {want} streams")
            await asyncio.sleep(0.1)
        await fleet.stop_sending()
        for k, p in enumerate(people):
            if abrupt and k % 2:
                dropped += 1  # no leave: the server notices the closed socket
            else:
                with contextlib.suppress(Exception):
                    await p.ws.send({"type": "leave"})
    finally:
        await fleet.stop_sending()
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)
    return size, dropped


async def soak(
    server: BenchServer, seconds: float, rounds: int, rooms: int, size: int
) -> list[Round]:
    slugs = [f"soak-raum-{k}" for k in range(rooms)]
    console = await leader(server.url, slugs)
    pids = worker_pids(server.pid)
    if len(pids) < 1:
        raise RuntimeError("no SFU worker processes found")
    results: list[Round] = []
    number = 0
    batches = 0
    try:
        for index in range(rounds):
            current = Round()
            until = time.monotonic() + seconds / rounds - SETTLE_SECONDS
            while True:
                batches += 1
                abrupt = batches % 2 == 1
                done = await asyncio.gather(
                    *(
                        batch(server.url, slug, size, number + k * size, abrupt)
                        for k, slug in enumerate(slugs)
                    ),
                    return_exceptions=True,
                )
                number += size * len(slugs)
                for outcome in done:
                    if isinstance(outcome, BaseException):
                        current.sessions += size  # they joined (some may not have)
                        current.media_failures.append(f"{type(outcome).__name__}: {outcome}")
                    else:
                        current.sessions += outcome[0]
                        current.abrupt += outcome[1]
                        current.media_checks += 1
                if time.monotonic() >= until:
                    break
            await wait_empty(server.url)
            await asyncio.sleep(SETTLE_SECONDS)
            current.rss_mb = {pid: rss_mb(pid) for pid in pids}
            results.append(current)
            print(
                f"round {index + 1}/{rounds}: {current.sessions} sessions "
                f"({current.abrupt} abrupt), media checked {current.media_checks}x, "
                f"failed {len(current.media_failures)}x; worker RSS MB "
                + ", ".join(f"{v:.1f}" for v in current.rss_mb.values()),
                flush=True,
            )
    finally:
        await console.close()
    return results


def log_problems(server: BenchServer) -> list[str]:
    """Lines of the server's log (and output) with a traceback or a worker death."""
    problems = []
    root = Path(server.tmp.name)
    for path in [root / "server.out", *sorted((root / "logs").glob("*"))]:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            text = line
            with contextlib.suppress(ValueError, AttributeError):
                text = json.dumps(json.loads(line))
            if "Traceback" in text or "never retrieved" in text or "exited" in text:
                problems.append(line[:300])
    return problems


def verdict(results: list[Round], problems: list[str], tolerance_mb: float) -> dict[str, Any]:
    """The soak's figures and whether it passed."""
    first, last = results[0], results[-1]
    later = sum(r.sessions for r in results[1:])
    growth = {pid: last.rss_mb[pid] - first.rss_mb[pid] for pid in first.rss_mb}
    failures = [f for r in results for f in r.media_failures]
    return {
        "sessions": sum(r.sessions for r in results),
        "abrupt": sum(r.abrupt for r in results),
        "media_checks": sum(r.media_checks for r in results),
        "media_failures": failures,
        "rss_mb": [r.rss_mb for r in results],
        "growth_mb": growth,
        "kb_per_session": {pid: 1000 * g / max(later, 1) for pid, g in growth.items()},
        "log_problems": problems,
        "passed": all(g <= tolerance_mb for g in growth.values()) and not failures and not problems,
    }


def run(
    seconds: float, rounds: int = 5, rooms: int = 2, size: int = 3, tolerance_mb: float = 5.0
) -> dict[str, Any]:
    """Starts a server, soaks it, stops it; returns verdict()'s dict."""
    if rounds < 2:
        raise ValueError("at least two rounds (the first is the baseline)")
    server = start(workers=2)
    try:
        results = asyncio.run(soak(server, seconds, rounds, rooms, size))
        problems = log_problems(server)
    finally:
        server.stop()
    return verdict(results, problems, tolerance_mb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="total duration")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rooms", type=int, default=2, help="rooms churning at once")
    parser.add_argument("--size", type=int, default=3, help="participants per batch")
    parser.add_argument("--tolerance-mb", type=float, default=5.0)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("at least two rounds (the first is the baseline)")
    summary = run(args.seconds, args.rounds, args.rooms, args.size, args.tolerance_mb)
    for pid, growth in summary["growth_mb"].items():
        per = summary["kb_per_session"][pid]
        print(f"worker {pid}: {growth:+.1f} MB from round 1 to the last ({per:.0f} kB/session)")
    print(
        f"sessions: {summary['sessions']} ({summary['abrupt']} abrupt); media checked "
        f"{summary['media_checks']}x, failed {len(summary['media_failures'])}x; "
        f"log problems: {len(summary['log_problems'])}"
    )
    for line in [*summary["media_failures"][:5], *summary["log_problems"][:10]]:
        print("  " + line)
    print("PASS" if summary["passed"] else "FAIL", f"(tolerance {args.tolerance_mb} MB)")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
