"""`kreis dial-in` behind Kamailio: the edge and the backend processes, supervised.

The supervisor runs Kamailio (`sipgw.kamailio`) on the public ports, starts one
gateway backend per process (`python -m sipgw.main --backend K ...`, SIP on 127.0.0.1
UDP, its own RTP range), restarts a backend or Kamailio when it dies (a backend's
calls are lost, the others go on), and stops them all on SIGTERM/SIGINT. Which
backend takes a call is Kamailio's business (dispatcher, call load, OPTIONS probes):
the supervisor routes nothing.

Each backend has a control channel to the supervisor, a socket pair carrying JSON
lines: the backend says `{"ready": true}` once pjsip listens, and exits when the
channel reaches EOF, so no backend outlives its supervisor. The processes share no
other state: wrong PINs are counted by the server (`sipgw.lockout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sipgw.config import FRONT_ADDRESS, Config
from sipgw.kamailio import Kamailio, die_with_parent
from sipgw.signals import end_process, stop_on_signals

log = logging.getLogger(__name__)

MAX_LINE = 4096
RESTART_PAUSE = 1.0
"""Seconds before a dead backend is started again (doubling while it keeps dying
within 30 s of its start, up to 30 s)."""


def free_loopback_port() -> int:
    """A UDP port on `FRONT_ADDRESS` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((FRONT_ADDRESS, 0))
        return int(udp.getsockname()[1])


class BackendProcess:
    """One gateway backend: its process, its control channel and its restarts."""

    def __init__(self, supervisor: Supervisor, index: int, port: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def run(self) -> None:
        """Starts the backend and starts it again whenever it dies, until stopping."""
        quick = 0  # deaths in a row within 30 s of starting
        while not self.supervisor.stopping:
            started = time.monotonic()
            try:
                await self._run_once()
            except OSError:
                log.exception("backend %d could not be started", self.index)
            if self.supervisor.stopping:
                return
            await self.supervisor.edge.gateway_died(self.port)
            quick = quick + 1 if time.monotonic() - started < 30 else 0
            pause = min(RESTART_PAUSE * 2 ** max(quick - 1, 0), 30)
            log.warning("backend %d ended; starting it again in %.0f s", self.index, pause)
            await asyncio.sleep(pause)

    async def _run_once(self) -> None:
        sup = self.supervisor
        ours, theirs = socket.socketpair()
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sipgw.main",
                "--config",
                str(sup.config_path),
                "--log-level",
                sup.log_level,
                "--pjsip-log-level",
                str(sup.pjsip_log_level),
                "--backend",
                str(self.index),
                "--backend-port",
                str(self.port),
                "--control-fd",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                preexec_fn=die_with_parent,
            )
        finally:
            theirs.close()
        self.starts += 1
        log.info("backend %d started (pid %d)", self.index, self.process.pid)
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=MAX_LINE)
        try:
            talk = asyncio.create_task(self._talk(reader, writer))
            code = await self.process.wait()
            talk.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await talk
        finally:
            writer.close()
        if not sup.stopping:
            log.warning("backend %d exited with code %s", self.index, code)

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
                if not request.get("ready"):
                    raise ValueError("unknown")
            except (ValueError, TypeError, KeyError):
                log.warning("backend %d sent a bad control message", self.index)
                continue
            if self.starts > 1:
                await self.supervisor.edge.gateway_restarted(self.port)
            log.info("backend %d is ready", self.index)

    async def stop(self, timeout: float = 10) -> None:
        await end_process(self.process, timeout, f"backend {self.index}")
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


class Supervisor:
    """Kamailio and the backend processes."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        log_level: str = "INFO",
        pjsip_log_level: int = 2,
    ) -> None:
        self.config = config
        self.config_path = config_path.resolve()
        self.log_level = log_level
        self.pjsip_log_level = pjsip_log_level
        base = config.sip.worker_base_port
        self.ports = [
            base + index if base else free_loopback_port() for index in range(config.sip.processes)
        ]
        edge_port = base + config.sip.processes if base else free_loopback_port()
        self.edge = Kamailio(config.sip, self.ports, edge_port, log_level)
        self.backends: list[BackendProcess] = []
        self.stopping = False

    async def start(self) -> None:
        await self.edge.start()
        for index, port in enumerate(self.ports):
            backend = BackendProcess(self, index, port)
            backend.task = asyncio.create_task(backend.run())
            self.backends.append(backend)

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.gather(*(w.stop() for w in self.backends))
        await self.edge.stop()


async def supervise(
    config: Config,
    config_path: Path,
    log_level: str = "INFO",
    pjsip_log_level: int = 2,
    stop: asyncio.Event | None = None,
    started: Callable[[Supervisor], Any] | None = None,
) -> Supervisor:
    """Runs Kamailio and the backends until `stop` is set or a signal arrives."""
    supervisor = Supervisor(config, config_path, log_level, pjsip_log_level)
    stop = stop_on_signals(stop)
    await supervisor.start()
    if started is not None:
        started(supervisor)
    log.info(
        "dial-in edge ready (udp %d, tcp %d) with %d backend processes of %d calls",
        config.sip.udp_port,
        config.sip.tcp_port,
        config.sip.processes,
        config.sip.max_calls,
    )
    try:
        await stop.wait()
    finally:
        log.info("dial-in edge stopping")
        await supervisor.stop()
    return supervisor


class ControlLink:
    """A backend's end of the control channel (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.closed = asyncio.Event()
        """Set when the supervisor is gone: the backend must stop."""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, fd: int) -> ControlLink:
        """Connects over the inherited socket `fd`."""
        sock = socket.socket(fileno=fd)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE)
        link = cls(reader, writer)
        link._task = asyncio.create_task(link._read())
        return link

    async def _read(self) -> None:
        try:
            while await self._reader.readline():
                pass  # the supervisor sends nothing; EOF means it is gone
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.closed.set()

    def ready(self) -> None:
        self._writer.write(b'{"ready": true}\n')

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer.close()
