"""SFU benchmark: forwarded packets per CPU-second of the real server, against the
ceiling of a bare asyncio UDP forwarder and the naive decode/re-encode relay.

    python -m bench.sfu [--rooms N --size M --seconds S --workers W]

Run it in a loopback-only namespace:

    unshare -n bash -c 'ip link set lo up; ip route add default dev lo; \
        .venv/bin/python -m bench.sfu'

The real server (`python -m app serve`, with `[media] workers = W`) is started as a
subprocess; a leader creates N rooms with the lobby off; light participants in one or
two client processes (bench/fleet.py, bench/lightclient.py) join through signalling,
publish synthetic Opus and VP8 over real ICE/DTLS/SRTP and time every packet they
receive. CPU and memory are read from /proc for the server's process tree only. The
last line printed is the RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench import server as bench_server
from bench.fleet import fleet_main
from bench.measure import (
    AUDIO_PPS,
    cpu_seconds,
    quantile,
    rss_bytes,
    runqueue_wait_seconds,
    video_pps,
)

DRAIN = 0.5
"""Seconds between the senders stopping and the receivers being read."""


@dataclass
class Figures:
    """One measured window."""

    name: str
    forwarded: int
    expected: int
    wall: float
    cpu: float
    latencies: list[float]
    client_cpu: float = float("nan")
    """CPU-seconds of the client processes in the window (they share the machine)."""
    runqueue_wait: float = float("nan")
    """Seconds the measured process tree was runnable but had no CPU (machine noise)."""

    @property
    def pps(self) -> float:
        return self.forwarded / self.wall

    @property
    def pps_per_core(self) -> float:
        return self.forwarded / self.cpu if self.cpu > 0 else float("nan")

    @property
    def loss(self) -> float:
        return 1 - self.forwarded / self.expected if self.expected else float("nan")

    @property
    def load(self) -> float:
        """CPU-seconds per second (1.0 = one core busy)."""
        return self.cpu / self.wall

    def ms(self, q: float) -> float:
        return quantile(self.latencies, q) * 1000

    def line(self) -> str:
        return (
            f"{self.name:<8} forwarded={self.forwarded} pps={self.pps:.0f} "
            f"cpu={self.cpu:.2f}s load={self.load:.2f} pps/core={self.pps_per_core:.0f} "
            f"loss={self.loss:.4f} p50={self.ms(0.5):.2f}ms p99={self.ms(0.99):.2f}ms "
            f"client_load={self.client_cpu / self.wall:.2f} "
            f"starved={self.runqueue_wait / self.wall:.2f}"
        )


def _spawn_fleets(setup: str, params: list[dict[str, Any]]) -> list[tuple[Any, Connection]]:
    ctx = mp.get_context("spawn")
    fleets = []
    for p in params:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=fleet_main, args=(child, setup, p), daemon=True)
        proc.start()
        fleets.append((proc, parent))
    return fleets


def _recv(conn: Connection, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {what} from a client process")
    msg = conn.recv()
    if msg[0] == "error":
        raise RuntimeError(f"client process failed: {msg[1]}")
    return msg


def _close_fleets(fleets: list[tuple[Any, Connection]]) -> None:
    for proc, conn in fleets:
        with contextlib.suppress(OSError):
            conn.send(("close",))
        proc.join(timeout=20)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)


def measure(
    name: str,
    pid: int,
    fleets: list[tuple[Any, Connection]],
    seconds: float,
    fanout: int,
    profile: Any = None,
) -> Figures:
    """Runs one window over ready fleets; CPU of pid's process tree."""
    conns = [c for _, c in fleets]
    client_pids = [p.pid for p, _ in fleets]
    ccpu0 = sum(cpu_seconds(p) for p in client_pids)
    cpu0 = cpu_seconds(pid)
    wait0 = runqueue_wait_seconds(pid)
    t0 = time.monotonic()
    for c in conns:
        c.send(("mark",))
    marked = [_recv(c, 10, "mark") for c in conns]
    if profile is not None:
        profile.start(pid, seconds)
    time.sleep(seconds)
    for c in conns:
        c.send(("stop",))
    stopped = [_recv(c, 10, "stop") for c in conns]
    t1 = time.monotonic()
    cpu1 = cpu_seconds(pid)
    wait1 = runqueue_wait_seconds(pid)
    ccpu1 = sum(cpu_seconds(p) for p in client_pids)
    time.sleep(DRAIN)
    for c in conns:
        c.send(("final",))
    final = [_recv(c, 30, "final") for c in conns]
    sent = sum(s[1] - m[1] for s, m in zip(stopped, marked, strict=True))
    received = sum(f[1] - m[2] for f, m in zip(final, marked, strict=True))
    latencies = sorted(x for f in final for x in f[2])
    figures = Figures(name, received, sent * fanout, t1 - t0, cpu1 - cpu0, latencies)
    figures.client_cpu = ccpu1 - ccpu0
    figures.runqueue_wait = wait1 - wait0
    return figures


def _slices(n: int, parts: int) -> list[range]:
    parts = max(1, min(parts, n))
    step = -(-n // parts)
    return [range(i, min(n, i + step)) for i in range(0, n, step)]


def run_sfu(args: argparse.Namespace) -> tuple[Figures, float]:
    """The real server; returns its figures and memory per participant (MB)."""
    env = {"KREIS_UVLOOP": "1" if args.uvloop else "0"}
    srv = bench_server.start(workers=args.workers, env=env)
    fleets: list[tuple[Any, Connection]] = []
    try:
        slugs = [f"bench-{i}" for i in range(args.rooms)]
        leader = asyncio.run(_start_rooms(srv.url, slugs))
        time.sleep(1.0)
        rss0 = rss_bytes(srv.pid)
        lo, hi = bench_server.CLIENT_PORTS
        parts = _slices(args.rooms, args.clients)
        width = (hi - lo + 1) // len(parts)
        params = [
            {
                "url": srv.url,
                "slugs": [slugs[i] for i in part],
                "size": args.size,
                "first_number": part.start * args.size,
                "ports": (lo + k * width, lo + (k + 1) * width - 1),
                "uvloop": args.client_uvloop,
                "verbose": True,
            }
            for k, part in enumerate(parts)
        ]
        fleets = _spawn_fleets("bench.lightclient:setup_sfu", params)
        for _, c in fleets:
            _recv(c, 180, "ready")
        time.sleep(args.settle)
        participants = args.rooms * args.size
        mem = (rss_bytes(srv.pid) - rss0) / participants / 1e6
        profile = _Profile(args.profile) if args.profile else None
        figures = measure("sfu", srv.pid, fleets, args.seconds, args.size - 1, profile)
        if profile is not None:
            profile.wait()
        del leader
        return figures, mem
    finally:
        _close_fleets(fleets)
        srv.stop()


async def _start_rooms(url: str, slugs: list[str]) -> None:
    client = await bench_server.leader(url, slugs)
    # The rooms outlive the leader's socket (empty_timeout starts once they are empty).
    await client.close()


def run_ceiling(args: argparse.Namespace) -> Figures:
    from bench.ceiling import forwarder_main

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=forwarder_main, args=(child, args.rooms, args.size), daemon=True)
    proc.start()
    fleets: list[tuple[Any, Connection]] = []
    try:
        addresses = _recv(parent, 30, "addresses")[1]
        parts = _slices(args.rooms, args.clients)
        params = [
            {
                "addresses": [addresses[i] for i in part],
                "size": args.size,
                "first_number": part.start * args.size,
            }
            for part in parts
        ]
        fleets = _spawn_fleets("bench.ceiling:setup_ceiling", params)
        for _, c in fleets:
            _recv(c, 60, "ready")
        time.sleep(args.settle)
        assert proc.pid is not None
        return measure("ceiling", proc.pid, fleets, args.seconds, args.size - 1)
    finally:
        _close_fleets(fleets)
        parent.send(("close",))
        proc.join(timeout=10)


class _Profile:
    """py-spy on the server process during the window (written to path)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.proc: Any = None

    def start(self, pid: int, seconds: float) -> None:
        import subprocess
        import sys
        from pathlib import Path

        py_spy = Path(sys.executable).with_name("py-spy")
        fmt = (
            "speedscope"
            if self.path.endswith(".json")
            else ("raw" if self.path.endswith(".txt") else "flamegraph")
        )
        self.proc = subprocess.Popen(
            [
                str(py_spy),
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "-s",
                "-f",
                fmt,
                "-o",
                self.path,
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        if self.proc is not None:
            self.proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=4)
    ap.add_argument("--size", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before the window")
    ap.add_argument(
        "--uvloop", action="store_true", help="SFU workers on uvloop (only with --workers > 1)"
    )
    ap.add_argument("--client-uvloop", action="store_true", help="clients on uvloop")
    ap.add_argument("--profile", help="py-spy output of the server (.svg, .txt, .json)")
    ap.add_argument("--skip", default="", help="comma list of: ceiling,relay")
    ap.add_argument("--relay-rooms", type=int, default=1)
    ap.add_argument("--relay-size", type=int, default=3)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    per_publisher = AUDIO_PPS + video_pps()
    print(
        f"load: {args.rooms} rooms x {args.size} participants, {per_publisher:.0f} pps per "
        f"publisher, offered out {args.rooms * args.size * (args.size - 1) * per_publisher:.0f} "
        f"pps, workers={args.workers}, {args.seconds:.0f}s window",
        flush=True,
    )
    sfu, mem = run_sfu(args)
    print(sfu.line(), f"mem={mem:.2f}MB/participant", flush=True)
    ceiling_pps = relay_pps = float("nan")
    if "ceiling" not in skip:
        ceiling = run_ceiling(args)
        print(ceiling.line(), flush=True)
        ceiling_pps = ceiling.pps_per_core
    if "relay" not in skip:
        from bench.relay import run_relay

        relay = run_relay(args.relay_rooms, args.relay_size, args.seconds)
        print(relay.line(), flush=True)
        relay_pps = relay.pps_per_core
    print(
        f"ratios: sfu/ceiling={sfu.pps_per_core / ceiling_pps:.3f} "
        f"sfu/relay={sfu.pps_per_core / relay_pps:.1f}",
        flush=True,
    )
    print(
        f"RESULT forwarded_pps_per_core={sfu.pps_per_core:.0f} "
        f"ceiling_pps_per_core={ceiling_pps:.0f} relay_pps_per_core={relay_pps:.0f} "
        f"p50_ms={sfu.ms(0.5):.2f} p99_ms={sfu.ms(0.99):.2f} mem_mb_per_participant={mem:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
