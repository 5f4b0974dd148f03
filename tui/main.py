"""`kreis console [SERVER-URL] [--lang de|en] [--audio [--audio-device D]] [--config PATH]
[--log-dir DIR [--log-level L]]`.

The `kreis` CLI hands the remaining arguments to `main()`. The server address comes
from the argument, else from the remembered config; the language from `--lang`, else
the terminal's (KREIS_LANG, LC_ALL, LC_MESSAGES, LANG).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from app.logsetup import THIRD_PARTY_LOGGERS, configure_process_logging
from tui.config import ConsoleConfig, default_path
from tui.i18n import normalise_lang, terminal_lang

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The console's command line."""
    parser = argparse.ArgumentParser(
        prog="kreis console",
        description="Moderation console for Kreis group leaders / Moderationskonsole für Kreis.",
    )
    parser.add_argument(
        "server_url", nargs="?", default=None, help="e.g. https://kreis.example.org"
    )
    parser.add_argument("--lang", choices=["de", "en"], default=None, help="language / Sprache")
    parser.add_argument(
        "--audio", action="store_true", help="listen and talk through the sound device"
    )
    parser.add_argument(
        "--audio-device",
        default="default",
        metavar="DEVICE",
        help="sound device name or number, or file:MIC.wav:SPEAKER.wav (default: the default)",
    )
    parser.add_argument("--config", type=Path, default=None, help="console.toml to use")
    parser.add_argument("--group", default=None, help="group id (else the remembered one)")
    parser.add_argument(
        "--log-dir",
        default="",
        metavar="DIR",
        help="write a masked log (no addresses, numbers or SDPs) to DIR / Protokollordner",
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser.parse_args(argv)


def configure_console_logging(args: argparse.Namespace) -> None:
    """With `--log-dir`: the server's masked JSON lines into daily files there (the
    terminal belongs to the console). Without: nothing is written, and aioice and aiortc
    stay at WARNING (their INFO lines carry addresses, their DEBUG lines SDPs)."""
    if args.log_dir:
        configure_process_logging(args.log_level, args.log_dir)
    else:
        for name in THIRD_PARTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str]) -> int:
    """Runs the console; returns the process exit code."""
    args = parse_args(argv)
    configure_console_logging(args)
    lang = normalise_lang(args.lang) if args.lang else terminal_lang()
    config_path: Path = args.config or default_path()
    remembered = ConsoleConfig.load(config_path)
    from tui.app import KreisConsole  # Textual is imported only when the console runs

    app = KreisConsole(
        server_url=args.server_url or remembered.server_url,
        group=args.group or remembered.group,
        lang=lang,
        config_path=config_path,
        audio=args.audio_device if args.audio else None,
    )
    result = app.run()
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    import sys

    raise SystemExit(main(sys.argv[1:]))
