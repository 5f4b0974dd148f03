"""The `kreis` command: `serve`, `console`, `dial-in` and `group …`.

`serve` starts the server (writing a first configuration on the very first start),
`console` and `dial-in` hand over to the clients in `tui/` and `sipgw/`, and the
`group` commands edit the groups in the TOML file, keeping every other key. Messages
are German or English: `--lang`, else `KREIS_LANG`, `LC_ALL`, `LANG`.

Exit codes: 0 success, 1 a refused group command or a missing component,
2 a configuration that cannot be used (and argparse's usage errors).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.config import (
    check_can_serve,
    check_group_id,
    config_from_dict,
    default_config_path,
    load_raw,
    save_raw,
    write_first_config,
)
from app.errors import ConfigError, GroupError, KreisError
from app.i18n import Lang, both, normalise_lang, t, terminal_lang
from app.passwords import generate_password, hash_password

MIN_PASSWORD = 10
"""Shortest group password the commands accept (generated ones are longer)."""
MAX_PASSWORD = 1024

# Commands whose remaining arguments belong to another program.
_HANDOVER = {"console": "tui.main", "dial-in": "sipgw.main"}
_OPTIONAL = {"pjsua2": "sip", "sounddevice": "audio"}
"""Packages that come with an optional extra, and the extra that brings them."""


def _global_options(lang: Lang) -> argparse.ArgumentParser:
    """`--config` and `--lang`, accepted before and after the command."""
    parent = argparse.ArgumentParser(add_help=False)
    default = default_config_path()
    parent.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=t("help.config", lang, path=default),
    )
    parent.add_argument(
        "--lang", choices=("de", "en"), default=argparse.SUPPRESS, help=t("help.lang", lang)
    )
    return parent


def build_parser(lang: Lang) -> argparse.ArgumentParser:
    """The argument parser, with help texts in `lang`."""
    common = _global_options(lang)
    parser = argparse.ArgumentParser(
        prog="kreis", description=t("help.description", lang), parents=[common]
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser("serve", parents=[common], help=t("help.serve", lang))
    serve.add_argument("--host", metavar="ADDRESS", help=t("help.host", lang))
    serve.add_argument("--port", type=int, metavar="PORT", help=t("help.port", lang))
    for name, key in (("console", "help.console"), ("dial-in", "help.dial_in")):
        handover = commands.add_parser(name, help=t(key, lang), add_help=False)
        handover.add_argument("args", nargs=argparse.REMAINDER)
    group = commands.add_parser("group", parents=[common], help=t("help.group", lang))
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action in ("add", "passwd"):
        sub = actions.add_parser(action, parents=[common], help=t(f"help.group_{action}", lang))
        sub.add_argument("name", metavar="NAME", help=t("help.name", lang))
        how = sub.add_mutually_exclusive_group()
        how.add_argument("--generate", action="store_true", help=t("help.generate", lang))
        how.add_argument(
            "--password-stdin", action="store_true", help=t("help.password_stdin", lang)
        )
    remove = actions.add_parser("remove", parents=[common], help=t("help.group_remove", lang))
    remove.add_argument("name", metavar="NAME", help=t("help.name", lang))
    actions.add_parser("list", parents=[common], help=t("help.group_list", lang))
    return parser


def _early_lang(argv: Sequence[str]) -> Lang:
    """The language before argparse runs, so that even its help is in that language."""
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return normalise_lang(argv[i + 1])
        if arg.startswith("--lang="):
            return normalise_lang(arg.partition("=")[2])
    return terminal_lang()


def _split_handover(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """Splits `kreis [global options] console|dial-in REST…` so REST is passed on untouched."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "--lang"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        if arg in _HANDOVER:
            return argv[: i + 1], arg, argv[i + 1 :]
        break
    return argv, None, []


def _fail(error: KreisError, lang: Lang) -> None:
    print(t("error_prefix", lang, message=error.message(lang)), file=sys.stderr)


def _run_handover(command: str, rest: list[str], lang: Lang) -> int:
    module_name = _HANDOVER[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        extra = _OPTIONAL.get((e.name or "").partition(".")[0])
        if extra is None:
            raise  # not an optional package: a broken install, show the traceback
        print(t("needs_extra", lang, command=command, package=e.name, extra=extra), file=sys.stderr)
        return 1
    entry: Callable[[list[str]], Any] = module.main
    try:
        result = entry(rest)
    except SystemExit as e:  # the client's own argparse (--help, usage errors)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return int(result or 0)


def _config_path(args: argparse.Namespace) -> tuple[Path, bool]:
    """The config path, and whether it was given explicitly."""
    given: Path | None = getattr(args, "config", None)
    return (given, True) if given is not None else (default_config_path(), False)


def _serve(args: argparse.Namespace, lang: Lang) -> int:
    path, explicit = _config_path(args)
    if not explicit and not path.exists():
        group_id, password = write_first_config(path)
        print(t("first_run", lang, path=path, group=group_id, password=password), flush=True)
    raw = load_raw(path)
    # --host/--port stand in for `[server] host/port` and go through the same checks.
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    if overrides:
        raw["server"] = {**raw.get("server", {}), **overrides}
    config = config_from_dict(raw, base_dir=path.resolve().parent)
    check_can_serve(config)
    from app import server  # late: group commands need no aiohttp or aiortc

    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop
            asyncio.run(server.serve(config, path))
    except OSError as e:
        # the listening socket: name the setting to change, not the bind call
        key = {errno.EADDRINUSE: "port_taken", errno.EACCES: "port_denied"}.get(e.errno or 0)
        if key is None or f", {config.server.port})" not in str(e):
            raise
        where = {"port": config.server.port, "host": config.server.host, "path": path}
        print(t(key, lang, **where), file=sys.stderr)
        return 1
    return 0


def _read_password(group_id: str, from_stdin: bool, lang: Lang) -> str:
    """Asks for the new password twice (terminal, or two lines of stdin for scripts)."""
    try:
        if from_stdin:
            first = sys.stdin.readline().rstrip("\r\n")
            second = sys.stdin.readline().rstrip("\r\n")
        else:
            first = getpass.getpass(t("prompt_password", lang, group=group_id))
            second = getpass.getpass(t("prompt_repeat", lang))
    except (EOFError, KeyboardInterrupt):
        raise GroupError("no_password", *both("group.no_input")) from None
    if not first:
        raise GroupError("no_password", *both("group.no_input"))
    if first != second:
        raise GroupError("password_mismatch", *both("group.mismatch"))
    if len(first) < MIN_PASSWORD:
        raise GroupError("password_short", *both("group.short", min=MIN_PASSWORD))
    if len(first) > MAX_PASSWORD:
        raise GroupError("password_long", *both("group.long", max=MAX_PASSWORD))
    return first


def _groups_table(data: dict[str, Any]) -> dict[str, Any]:
    groups = data.setdefault("groups", {})
    if not isinstance(groups, dict):
        raise ConfigError("groups", "must be a table ([groups])", "muss eine Tabelle sein")
    return groups


def _group(args: argparse.Namespace, lang: Lang) -> int:
    path, _ = _config_path(args)
    action: str = args.action
    if action == "add" and not path.exists():
        data: dict[str, Any] = {}
    else:
        data = load_raw(path)
    groups = _groups_table(data)
    if action == "list":
        if not groups:
            print(t("no_groups", lang))
        for listed in sorted(groups):
            print(listed)
        return 0
    group_id: str = args.name
    check_group_id(group_id)
    if action == "add" and group_id in groups:
        raise GroupError("group_exists", *both("group.exists", group=group_id))
    if action in ("passwd", "remove") and group_id not in groups:
        raise GroupError("no_such_group", *both("group.missing", group=group_id))
    if action == "remove":
        del groups[group_id]
        save_raw(path, data)
        print(t("group_removed", lang, group=group_id))
        print(t("restart_hint", lang))
        return 0
    from_stdin = args.password_stdin or os.environ.get("KREIS_PASSWORD_STDIN") == "1"
    password = generate_password() if args.generate else _read_password(group_id, from_stdin, lang)
    entry = groups.get(group_id)
    entry = dict(entry) if isinstance(entry, dict) else {}
    entry["password_hash"] = hash_password(password)
    groups[group_id] = entry
    save_raw(path, data)
    print(t("group_added" if action == "add" else "group_passwd", lang, group=group_id))
    if args.generate:
        print(t("generated_password", lang, group=group_id, password=password))
    print(t("restart_hint", lang))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the `kreis` command with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    lang = _early_lang(argv)
    head, handover, rest = _split_handover(argv)
    parser = build_parser(lang)
    try:
        args = parser.parse_args(head)
    except SystemExit as e:  # --help or a usage error; argparse has printed it
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    lang = normalise_lang(getattr(args, "lang", None) or lang)
    if handover is not None:
        if getattr(args, "lang", None):
            os.environ["KREIS_LANG"] = args.lang  # the client picks its language from here
        return _run_handover(handover, rest, lang)
    try:
        if args.command == "serve":
            return _serve(args, lang)
        return _group(args, lang)
    except ConfigError as e:
        _fail(e, lang)
        return 2
    except KreisError as e:
        _fail(e, lang)
        return 1
    except OSError as e:  # e.g. the config directory is not writable
        print(t("error_prefix", lang, message=f"{e.filename or ''}: {e.strerror}"), file=sys.stderr)
        return 1
