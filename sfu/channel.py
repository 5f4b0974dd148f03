"""Pickled messages between the server and an SFU worker, without blocking either loop.

multiprocessing's Connection.send and recv block: a worker too busy to read would
stall the server's event loop on a full pipe, and a message that arrives in parts
would stall the reader. A Channel puts the same socket pair (multiprocessing.Pipe is
a socketpair on Unix) under asyncio's streams: `send` queues the bytes and returns,
and a task reads whole messages and hands them to `on_message`. Each message is a
4-byte big-endian length and a pickle; only the parent and the child it spawned hold
the two ends, so nothing else can write to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024
"""Bytes; a longer length prefix means the stream is broken."""
_LENGTH = struct.Struct("!I")


class Channel:
    """One end of a worker's pipe, read by a task and written without blocking."""

    def __init__(
        self,
        conn: Connection,
        on_message: Callable[[Any], None],
        on_closed: Callable[[], None],
    ) -> None:
        # A socket of its own over a duplicate of the pipe's descriptor; the
        # Connection is closed so only the Channel owns the end.
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        conn.close()
        self._on_message = on_message
        self._on_closed = on_closed
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def open(self) -> None:
        """Starts reading; `on_closed` is called once when the other end is gone."""
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._task = asyncio.create_task(self._read(reader))

    def send(self, msg: Any) -> bool:
        """Queues msg; False when the channel is closed."""
        if self.closed or self._writer is None or self._writer.is_closing():
            return False
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_LENGTH.pack(len(data)) + data)
        return True

    async def drain(self) -> None:
        """Waits until what was sent has left this process (or the channel closed)."""
        if self._writer is not None and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                if size > MAX_MESSAGE:
                    raise ValueError("message too long")
                self._on_message(pickle.loads(await reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the other process is gone (or closed its end)
        except Exception as exc:
            logger.error("SFU channel broken: %s", type(exc).__name__)
        finally:
            self.close()
            self._on_closed()

    def close(self) -> None:
        """Closes this end (the reader then calls `on_closed`); safe twice."""
        if self.closed:
            return
        self.closed = True
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()

    async def stop(self) -> None:
        """Closes this end and waits for the reader task to end."""
        self.close()
        if self._task is not None and self._task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
