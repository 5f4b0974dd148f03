"""`kreis dial-in`: starts the SIP gateway and runs it until SIGINT or SIGTERM.

The CLI calls `main(argv)`. It reads the shared TOML (`--config`), loads and checks the
prompts, starts pjsip on its own thread and serves calls, each joining its room as a
client of the Kreis server (`sipgw.roomlink.ServerLink`).

With `[sip] processes > 1` (or gateways on other machines) the same command becomes
the supervisor of Kamailio as the SIP edge and of that many backend processes behind it
(`sipgw.supervisor`, `sipgw.kamailio`); the supervisor starts each backend as
`python -m sipgw.main --backend K --backend-port P --control-fd FD`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from app.logsetup import configure_process_logging
from sipgw import config as config_module
from sipgw.announce import Prompts
from sipgw.config import BackendRole, Config, backend_role
from sipgw.errors import GatewayError
from sipgw.gateway import Gateway
from sipgw.kamailio import edge_wanted
from sipgw.link import LinkFactory
from sipgw.signals import stop_on_signals

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("kreis.toml")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kreis dial-in",
        description="Telefon-Einwahl für Kreis / telephone dial-in for Kreis (SIP gateway)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="Konfigurationsdatei / config file (TOML with [gateway] and [sip])",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Python log level (pjsip's own log is masked and stays at warnings)",
    )
    parser.add_argument(
        "--pjsip-log-level",
        type=int,
        default=2,
        choices=range(0, 6),
        help="pjsip log verbosity 0-5 (lines are masked; 3+ is for debugging only)",
    )
    # Set by the supervisor for its backends only.
    parser.add_argument("--backend", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--control-fd", type=int, default=-1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def server_link_factory(config: Config) -> LinkFactory:
    """A factory of links to the configured Kreis server."""
    from sipgw.roomlink import ServerLink

    def make() -> ServerLink:
        return ServerLink(config.gateway.server_url, config.gateway.secret)

    return make


async def serve(
    config: Config,
    link_factory: LinkFactory | None = None,
    stop: asyncio.Event | None = None,
    pjsip_log_level: int = 2,
    role: BackendRole | None = None,
    ready: Callable[[], None] | None = None,
) -> Gateway:
    """Runs the gateway until `stop` is set (or a signal arrives); returns it stopped.

    A backend behind Kamailio passes its `role` and a `ready` callback (called
    once pjsip listens). Wrong PINs are counted by the server, not here.
    """
    prompts = Prompts(config.sip.prompts_dir)
    factory = link_factory or server_link_factory(config)
    gateway = Gateway(config, factory, prompts, pjsip_log_level, role)
    stop = stop_on_signals(stop)
    await gateway.start()
    if role is not None:
        log.info("dial-in backend %d ready", role.index)
    else:
        log.info(
            "dial-in gateway ready (udp %d, tcp %d)",
            config.sip.udp_port,
            config.sip.tcp_port,
        )
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        log.info("dial-in gateway stopping")
        await gateway.stop()
    return gateway


def _die_with_parent() -> None:
    # Linux: SIGTERM when the supervisor dies, even by SIGKILL (the control channel's
    # EOF covers the rest).
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def serve_backend(
    config: Config, index: int, port: int, fd: int, pjsip_log_level: int
) -> None:
    """A backend behind Kamailio: serves until the supervisor says stop or is gone."""
    from sipgw.supervisor import ControlLink

    link = await ControlLink.open(fd)
    try:
        await serve(
            config,
            stop=link.closed,
            pjsip_log_level=pjsip_log_level,
            role=backend_role(config.sip, index, port),
            ready=link.ready,
        )
    finally:
        await link.close()


def main(argv: list[str]) -> int:
    """Entry point of `kreis dial-in`; returns the process exit code."""
    args = parse_args(argv)
    # The server's JSON lines and masking (addresses, numbers, SDPs, ICE credentials);
    # aioice and aiortc stay at WARNING even with --log-level DEBUG.
    part = f"backend {args.backend}" if args.backend is not None else ""
    configure_process_logging(args.log_level, part=part)
    try:
        config = config_module.load(args.config)
        if args.backend is not None:
            _die_with_parent()
            asyncio.run(
                serve_backend(
                    config, args.backend, args.backend_port, args.control_fd, args.pjsip_log_level
                )
            )
        elif edge_wanted(config.sip):
            from sipgw.supervisor import supervise

            asyncio.run(supervise(config, args.config, args.log_level, args.pjsip_log_level))
        else:
            asyncio.run(serve(config, pjsip_log_level=args.pjsip_log_level))
    except GatewayError as exc:
        log.error("%s (%s)", exc, exc.code)
        print(f"kreis dial-in: {exc.message_de} / {exc.message_en}\n  {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
