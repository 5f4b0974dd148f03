"""Fixtures for the gateway tests: an in-process gateway on free loopback ports.

The gateway runs in the test's own event loop (pjsip on its own thread), so a test
can reach into the fake room behind it. SIP tests are marked `sip`; they expect to run
in a loopback-only network namespace (scripts/test does that).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice.ice
import pytest

# `tests.sipgw.*` helpers must import under plain `pytest` too, not only `python -m pytest`.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from sipgw.config import Config, parse  # noqa: E402
from sipgw.gateway import Gateway  # noqa: E402
from sipgw.link import LinkFactory  # noqa: E402
from sipgw.main import serve  # noqa: E402
from tests.sipgw.fakes import FakeServer  # noqa: E402
from tests.sipgw.phones import BaresipPhone, DialTarget, free_sip_port  # noqa: E402


@dataclass
class RunningGateway(DialTarget):
    """A gateway serving in the background of the test's event loop."""

    config: Config
    port: int
    stop: asyncio.Event
    task: asyncio.Task[Gateway]
    fake: FakeServer | None
    gateway: Gateway | None = None

    def alive(self) -> bool:
        return not self.task.done()


def gateway_config(port: int, server_url: str = "ws://127.0.0.1:9/ws", **sip: Any) -> Config:
    table: dict[str, Any] = {
        "listen_address": "127.0.0.1",
        "udp_port": port,
        "tcp_port": port,
        "rtp_port": 40000 + port % 10000,
        "lockout_seconds": 60,
    }
    table.update(sip)
    return parse(
        {
            "gateway": {"secret": "gateway-geheimnis-5678", "server_url": server_url},
            "sip": table,
        }
    )


StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves loopback out of its candidates; the tests have nothing else."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    """Starts gateways (fake room by default); stops them all at the end."""
    running: list[RunningGateway] = []

    async def start(
        fake: FakeServer | None = None,
        link_factory: LinkFactory | None = None,
        server_url: str = "ws://127.0.0.1:9/ws",
        **sip: Any,
    ) -> RunningGateway:
        port = free_sip_port()
        config = gateway_config(port, server_url, **sip)
        if link_factory is None and fake is None:
            fake = FakeServer()
        factory = link_factory or (fake.factory() if fake else None)
        stop, listening = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(config, factory, stop, ready=listening.set))
        gw = RunningGateway(config, port, stop, task, fake)
        running.append(gw)
        # Started means pjsip listens (serve's `ready`), not that some time went by.
        ready = asyncio.create_task(listening.wait())
        await asyncio.wait({ready, task}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            raise AssertionError("the gateway stopped while starting") from task.exception()
        assert listening.is_set(), "the gateway did not listen within 20 s"
        return gw

    yield start
    # Every gateway is stopped before any failure is reported; a gateway that fails
    # while stopping fails the test (a crash at shutdown is a bug, not noise).
    for gw in running:
        gw.stop.set()
    results = await asyncio.gather(
        *(asyncio.wait_for(gw.task, 20) for gw in running), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise AssertionError(f"{len(failures)} gateway(s) failed while stopping") from failures[0]


@pytest.fixture
def phones(tmp_path: Path) -> Any:
    """Makes baresip phones; every one is stopped (killed if need be) at the end."""
    if not shutil.which("baresip"):
        pytest.skip("baresip is not installed")
    made: list[BaresipPhone] = []

    def make(
        name: str = "phone",
        number: str = "0301234547",
        tone_hz: float = 440,
        burst: float = 0.0,
        display_name: str = "",
    ) -> Any:
        phone = BaresipPhone(
            tmp_path / f"{name}-{len(made)}", number, tone_hz, burst, display_name=display_name
        )
        made.append(phone)
        return phone.start()

    try:
        yield make
    finally:
        for phone in made:
            phone.stop()
