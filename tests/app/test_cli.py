"""The `kreis` command, run as a real process (`python -m app`) against files in tmp_path."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from app.cli import _split_handover
from app.config import load_config
from app.passwords import verify_password

ROOT = Path(__file__).resolve().parents[2]
GENERATED = re.compile(r"[a-z2-7]{5}(?:-[a-z2-7]{5}){3}")


def kreis(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc_env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "KREIS_LANG")}
    proc_env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    proc_env["LANG"] = "C.UTF-8"
    proc_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=proc_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def default_path(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "kreis" / "kreis.toml"


def test_help_lists_the_four_commands(tmp_path: Path) -> None:
    result = kreis(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("serve", "console", "dial-in", "group"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    assert "--config" in result.stdout


def test_help_in_german(tmp_path: Path) -> None:
    result = kreis(tmp_path, "--lang", "de", "--help")
    assert "den Server starten" in result.stdout
    assert "den Server starten" in kreis(tmp_path, "--help", env={"LANG": "de_DE.UTF-8"}).stdout


def test_group_round_trip_keeps_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "kreis.toml"
    path.write_text("[media]\nport_min = 41000\nport_max = 41999\n\n[server]\nport = 9000\n")
    path.chmod(0o600)
    cfg = ("--config", str(path))

    added = kreis(tmp_path, "group", "add", "kreuzberg", "--generate", *cfg)
    assert added.returncode == 0, added.stderr
    (first,) = GENERATED.findall(added.stdout)
    config = load_config(path)
    assert verify_password(first, config.groups["kreuzberg"].password_hash)
    assert first not in path.read_text()

    # --config also works before the command
    assert kreis(tmp_path, *cfg, "group", "add", "neukoelln", "--generate").returncode == 0
    listed = kreis(tmp_path, "group", "list", *cfg)
    assert listed.returncode == 0
    assert listed.stdout.split() == ["kreuzberg", "neukoelln"]

    changed = kreis(tmp_path, "group", "passwd", "kreuzberg", "--generate", *cfg)
    assert changed.returncode == 0, changed.stderr
    (second,) = GENERATED.findall(changed.stdout)
    stored = load_config(path).groups["kreuzberg"].password_hash
    assert verify_password(second, stored) and not verify_password(first, stored)

    removed = kreis(tmp_path, "group", "remove", "neukoelln", *cfg)
    assert removed.returncode == 0, removed.stderr
    data = tomllib.loads(path.read_text())
    assert data["media"] == {"port_min": 41000, "port_max": 41999}
    assert data["server"] == {"port": 9000}
    assert list(data["groups"]) == ["kreuzberg"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kreis(tmp_path, "group", "list", *cfg).stdout.split() == ["kreuzberg"]


def test_add_with_password_from_stdin(tmp_path: Path) -> None:
    path = tmp_path / "kreis.toml"
    cfg = ("--config", str(path))
    result = kreis(
        tmp_path, "group", "add", "abend", "--password-stdin", *cfg, stdin="lang-genug-123\n" * 2
    )
    assert result.returncode == 0, result.stderr
    assert "lang-genug-123" not in result.stdout + result.stderr
    assert "lang-genug-123" not in path.read_text()
    assert verify_password("lang-genug-123", load_config(path).groups["abend"].password_hash)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # the environment switch works too, for scripts that cannot add a flag
    env = {"KREIS_PASSWORD_STDIN": "1"}
    again = kreis(
        tmp_path, "group", "passwd", "abend", *cfg, stdin="noch-ein-passwort\n" * 2, env=env
    )
    assert again.returncode == 0, again.stderr
    assert verify_password("noch-ein-passwort", load_config(path).groups["abend"].password_hash)


@pytest.mark.parametrize(
    ("stdin", "english", "german"),
    [
        ("lang-genug-123\nlang-genug-124\n", "not the same", "nicht gleich"),
        ("kurz\nkurz\n", "at least 10", "mindestens 10"),
        ("", "no password", "kein Passwort"),
    ],
)
def test_bad_password_input_changes_nothing(
    tmp_path: Path, stdin: str, english: str, german: str
) -> None:
    path = tmp_path / "kreis.toml"
    path.write_text("[server]\nport = 9000\n")
    cfg = ("group", "add", "abend", "--password-stdin", "--config", str(path))
    result = kreis(tmp_path, *cfg, stdin=stdin)
    assert result.returncode == 1
    assert english in result.stderr
    assert german in kreis(tmp_path, "--lang", "de", *cfg, stdin=stdin).stderr
    assert path.read_text() == "[server]\nport = 9000\n"


def test_group_errors_are_clear_and_bilingual(tmp_path: Path) -> None:
    path = tmp_path / "kreis.toml"
    cfg = ("--config", str(path))
    assert kreis(tmp_path, "group", "add", "abend", "--generate", *cfg).returncode == 0

    exists = kreis(tmp_path, "group", "add", "abend", "--generate", *cfg)
    assert exists.returncode == 1
    assert "exists already" in exists.stderr
    exists_de = kreis(
        tmp_path, "group", "add", "abend", "--generate", *cfg, env={"KREIS_LANG": "de"}
    )
    assert "gibt es schon" in exists_de.stderr

    missing = kreis(tmp_path, "group", "remove", "morgen", *cfg)
    assert missing.returncode == 1
    assert "no group morgen" in missing.stderr
    german = kreis(tmp_path, "--lang", "de", "group", "passwd", "morgen", "--generate", *cfg)
    assert "keine Gruppe morgen" in german.stderr

    bad = kreis(tmp_path, "group", "add", "Gross Schreibung", "--generate", *cfg)
    assert bad.returncode == 2
    assert "group id" in bad.stderr
    assert list(load_config(path).groups) == ["abend"]


def test_group_commands_use_the_default_path(tmp_path: Path) -> None:
    assert kreis(tmp_path, "group", "add", "abend", "--generate").returncode == 0
    path = default_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(load_config(path).groups) == ["abend"]


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = kreis(tmp_path, "group", "list", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_broken_config_stops_serve_before_starting(tmp_path: Path) -> None:
    path = tmp_path / "kreis.toml"
    path.write_text("[media]\nport_min = 80\n")
    result = kreis(tmp_path, "serve", "--config", str(path))
    assert result.returncode == 2
    assert "media.port_min: must be an integer between 1024 and 65535" in result.stderr


def test_serve_refuses_a_public_address_without_tls(tmp_path: Path) -> None:
    path = tmp_path / "kreis.toml"
    assert (
        kreis(tmp_path, "group", "add", "abend", "--generate", "--config", str(path)).returncode
        == 0
    )
    data = path.read_text()
    path.write_text('[server]\nhost = "0.0.0.0"\n\n' + data)
    result = kreis(tmp_path, "serve", "--config", str(path))
    assert result.returncode == 2
    assert "server.host" in result.stderr and "behind_proxy" in result.stderr


BLOCK_PJSUA2 = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pjsua2":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("lang", "text"),
    [("en", "needs the package pjsua2"), ("de", "braucht das Paket pjsua2")],
)
def test_dial_in_without_the_sip_extra_says_what_to_install(
    tmp_path: Path, lang: str, text: str
) -> None:
    """Without pjsua2 (the `sip` extra), `kreis dial-in` names the missing piece."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_PJSUA2, "--lang", lang, "dial-in", "--help"],
        cwd=ROOT,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert text in result.stderr and "pip install 'kreis[sip]'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("command", "module"), [("console", "tui"), ("dial-in", "sipgw")])
def test_client_help_is_the_clients_own(tmp_path: Path, command: str, module: str) -> None:
    assert (ROOT / module / "main.py").exists()
    result = kreis(tmp_path, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: kreis {command}" in result.stdout or "usage:" in result.stdout
    assert "group" not in result.stdout.split("\n")[0]  # not the top-level usage line


def test_arguments_after_console_and_dial_in_are_passed_on_untouched() -> None:
    rest = ["https://kreis.example.org", "--config", "x.toml", "--help", "group"]
    assert _split_handover(["console", *rest]) == (["console"], "console", rest)
    assert _split_handover(["--lang", "de", "dial-in", *rest]) == (
        ["--lang", "de", "dial-in"],
        "dial-in",
        rest,
    )
    assert _split_handover(["--config", "console", "serve"]) == (
        ["--config", "console", "serve"],
        None,
        [],
    )
    assert _split_handover(["group", "add", "console"])[1] is None


# Language choice and the error sentences people read (app/i18n.py, app/errors.py).


def test_every_protocol_error_code_has_both_sentences() -> None:
    from app.errors import ERROR_TEXTS, ProtocolError

    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = doc.split("## Error codes", 1)[1]
    codes = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    assert len(codes) >= 20
    assert set(codes) <= set(ERROR_TEXTS), set(codes) - set(ERROR_TEXTS)
    for code in codes:
        en, de = ERROR_TEXTS[code]
        assert en.endswith(".") and de.endswith(".") and en != de, code
        error = ProtocolError(code, ref="join")
        assert error.code == code and error.message("de") == de and error.message("en") == en
    assert ProtocolError("no_such_code").message("en") == ERROR_TEXTS["internal"][0]


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,de;q=0.5", "de"),
        ("fr, en;q=0.2, de;q=0.7", "de"),
        ("de;q=0, en", "en"),
        ("fr", "en"),
        ("de;q=nonsense", "en"),
    ],
)
def test_browser_language(header: str | None, lang: str) -> None:
    from app.i18n import pick_lang

    assert pick_lang(header) == lang


def test_terminal_language() -> None:
    from app.i18n import terminal_lang

    assert terminal_lang({}) == "en"
    assert terminal_lang({"LANG": "de_AT.UTF-8"}) == "de"
    assert terminal_lang({"LANG": "de_DE.UTF-8", "LC_ALL": "C"}) == "en"
    assert terminal_lang({"LANG": "en_GB.UTF-8", "KREIS_LANG": "de"}) == "de"
