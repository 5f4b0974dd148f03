"""Impairs loopback inside the benchmark's own network namespace: random loss
(iptables `statistic`), delay and jitter (a tiny NFQUEUE delayer, below) and one
receiver's bandwidth cap (`tc htb`).

The kernel here has no netem, and no NFQUEUE binding is installed, so the delayer
speaks nfnetlink_queue itself: it binds a queue, learns each packet's id (metadata
only, no payload copied) and accepts it after a random delay. Accepting later packets
before earlier ones is exactly what reordering on a real path looks like.

Run the delayer as its own process: `python -m bench.impair delay QUEUE MEAN_MS SPREAD_MS`.
Only ever inside a namespace that holds nothing but the benchmark (see bench/network.py).
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import struct
import subprocess
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2

_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")


def _attr(kind: int, payload: bytes) -> bytes:
    head = _ATTR.pack(_ATTR.size + len(payload), kind)
    return head + payload + b"\x00" * (-len(payload) % 4)


def _message(msg: int, queue: int, attrs: bytes, seq: int = 0) -> bytes:
    body = _NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg
    return _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST, seq, 0) + body


def _packet_ids(data: bytes) -> list[int]:
    ids: list[int] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos = offset + _NLMSG.size + _NFGEN.size
            end = offset + length
            while pos + _ATTR.size <= end:
                alen, atype = _ATTR.unpack_from(data, pos)
                if alen < _ATTR.size:
                    break
                if atype & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, pos + _ATTR.size)[0])
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def delay(queue: int, mean_ms: float, spread_ms: float) -> None:
    """Accepts every packet of NFQUEUE `queue` after mean ± spread ms (uniform)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    cmd = struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)
    sock.send(_message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, cmd)))
    params = struct.pack("!IB", 0, NFQNL_COPY_META)
    sock.send(_message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_PARAMS, params)))
    due: list[tuple[float, int]] = []
    print("delayer ready", flush=True)
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else 1.0
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            now = time.monotonic()
            for pid in _packet_ids(sock.recv(1 << 16)):
                wait = (mean_ms + random.uniform(-spread_ms, spread_ms)) / 1000
                heapq.heappush(due, (now + wait, pid))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, pid = heapq.heappop(due)
            verdict = struct.pack("!II", NF_ACCEPT, pid)
            sock.send(_message(NFQNL_MSG_VERDICT, queue, _attr(NFQA_VERDICT_HDR, verdict)))


# --- iptables and tc -----------------------------------------------------------------


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=10)


def loss(
    probability: float, sport: tuple[int, int] | None = None, dport: int | None = None
) -> list[str]:
    """Drops UDP packets from the given source ports (or to one destination port) at
    random; returns the rule."""
    ports = ["--sport", f"{sport[0]}:{sport[1]}"] if sport else ["--dport", str(dport)]
    rule = [
        "OUTPUT", "-o", "lo", "-p", "udp", *ports,
        "-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP",
    ]  # fmt: skip
    run("iptables", "-A", *rule)
    return rule


def queue_udp(queue: int) -> list[str]:
    """Sends every UDP packet on lo through NFQUEUE `queue` (the delayer must run)."""
    rule = ["OUTPUT", "-o", "lo", "-p", "udp", "-j", "NFQUEUE", "--queue-num", str(queue)]
    run("iptables", "-A", *rule)
    return rule


def remove(rule: list[str]) -> None:
    run("iptables", "-D", *rule)


def cap_port(port: int, kbit: int, buffer_bytes: int) -> None:
    """Caps UDP traffic to local port `port` at kbit/s with a drop-tail buffer."""
    run("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    run(
        "tc",
        "class",
        "add",
        "dev",
        "lo",
        "parent",
        "1:",
        "classid",
        "1:10",
        "htb",
        "rate",
        "20gbit",
    )
    run("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb",
        "rate", f"{kbit}kbit", "ceil", f"{kbit}kbit")  # fmt: skip
    run("tc", "qdisc", "add", "dev", "lo", "parent", "1:20", "bfifo", "limit", str(buffer_bytes))
    run("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
        "u32", "match", "ip", "dport", str(port), "0xffff", "flowid", "1:20")  # fmt: skip


def uncap() -> None:
    run("tc", "qdisc", "del", "dev", "lo", "root")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "delay":
        delay(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("usage: python -m bench.impair delay QUEUE MEAN_MS SPREAD_MS")
