"""`kreis dial-in`: starts the SIP gateway and runs it until SIGINT or SIGTERM.

The CLI calls `main(argv)`. It reads the shared TOML (`--config`), loads and checks the
prompts, starts pjsip on its own thread and serves calls, each joining its room as a
client of the Kreis server (`sipgw.roomlink.ServerLink`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from sipgw import config as config_module
from sipgw.announce import Prompts
from sipgw.config import Config
from sipgw.errors import GatewayError
from sipgw.gateway import Gateway
from sipgw.link import LinkFactory

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
) -> Gateway:
    """Runs the gateway until `stop` is set (or a signal arrives); returns it stopped."""
    prompts = Prompts(config.sip.prompts_dir)
    factory = link_factory or server_link_factory(config)
    gateway = Gateway(config, factory, prompts, pjsip_log_level)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    log.info(
        "dial-in gateway ready (udp %d, tcp %d, tls %s)",
        config.sip.udp_port,
        config.sip.tcp_port,
        "on" if config.sip.tls_cert else "off",
    )
    try:
        await stop.wait()
    finally:
        log.info("dial-in gateway stopping")
        await gateway.stop()
    return gateway


def main(argv: list[str]) -> int:
    """Entry point of `kreis dial-in`; returns the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_module.load(args.config)
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
