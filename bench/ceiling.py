"""The ceiling: a bare asyncio UDP forwarder with the SFU's fan-out, no crypto.

One UDP socket per participant on the forwarder; every datagram that arrives on a
participant's socket is sent to every other participant of its room (whose address
the forwarder learns from the first datagram, like ICE latching). Nothing is parsed,
rewritten, encrypted or cached: that is the most a Python asyncio forwarder can do,
and what the real SFU is measured against. Clients are the same paced fleet as for
the SFU, with plain sockets instead of peer connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.fleet import Fleet, wait_until
from bench.measure import Stream
from sfu.aiortc_private import UDP_RECEIVE_BUFFER

log = logging.getLogger(__name__)

HELLO = b"hello"

Address = tuple[str, int]


class _Seat(asyncio.DatagramProtocol):
    """One participant's socket on the forwarder."""

    def __init__(self, room: list[_Seat]) -> None:
        self.room = room
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _big_buffer(transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.peer is None:
            self.peer = addr
        if data == HELLO:
            return
        sendto = self.transport.sendto  # type: ignore[union-attr]
        for seat in self.room:
            if seat is not self and seat.peer is not None:
                sendto(data, seat.peer)


def _big_buffer(transport: asyncio.BaseTransport) -> None:
    # The same receive buffer as the SFU's media sockets (sfu/aiortc_private.py).
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)


async def _forward(conn: Connection, rooms: int, size: int) -> None:
    loop = asyncio.get_running_loop()
    addresses: list[list[Address]] = []
    transports = []
    for _ in range(rooms):
        room: list[_Seat] = []
        for _ in range(size):
            transport, seat = await loop.create_datagram_endpoint(
                functools.partial(_Seat, room), local_addr=("127.0.0.1", 0)
            )
            room.append(seat)
            transports.append(transport)
        addresses.append([s.transport.get_extra_info("sockname")[:2] for s in room])  # type: ignore[union-attr]
    conn.send(("addresses", addresses))
    await loop.run_in_executor(None, conn.recv)
    for transport in transports:
        transport.close()


def forwarder_main(conn: Connection, rooms: int, size: int) -> None:
    """Entry point of the forwarder process; runs until the orchestrator says close."""
    asyncio.run(_forward(conn, rooms, size))


class _ClientSeat(asyncio.DatagramProtocol):
    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.seen: set[int] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _big_buffer(transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(self.seen) < 64:
            self.seen.add(int.from_bytes(data[8:12], "big"))
        self.sink(data)


async def setup_ceiling(fleet: Fleet, params: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    """Fleet setup for the forwarder: params addresses (per room), size, first_number."""
    loop = asyncio.get_running_loop()
    size = int(params["size"])
    seats: list[_ClientSeat] = []
    transports: list[asyncio.DatagramTransport] = []
    number = int(params["first_number"])
    for room in params["addresses"]:
        for addr in room:
            addr = tuple(addr)
            transport, seat = await loop.create_datagram_endpoint(
                lambda: _ClientSeat(fleet.receipts.sink), local_addr=("127.0.0.1", 0)
            )
            transport.sendto(HELLO, addr)
            seats.append(seat)
            transports.append(transport)

            def send(data: bytes, t: Any = transport, a: Any = addr) -> None:
                t.sendto(data, a)

            fleet.streams.append(
                Stream(
                    number,
                    send,
                    send,
                    audio_ssrc=2 * number + 1,
                    video_ssrc=2 * number + 2,
                    phase=(number * 0.37) % 1.0,
                )
            )
            number += 1

    async def close() -> None:
        for t in transports:
            t.close()

    await asyncio.sleep(0.2)  # the hellos arrive: the forwarder knows every address
    fleet.expected_per_packet = size - 1
    fleet.start_sending()
    want = 2 * (size - 1)
    try:
        await wait_until(lambda: all(len(s.seen) >= want for s in seats), 30, "ceiling media")
    except BaseException:
        await fleet.stop_sending()
        with contextlib.suppress(Exception):
            await close()
        raise
    return close
