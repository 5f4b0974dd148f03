"""Loading and checking the TOML configuration, and the files the group commands write."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.config import (
    Config,
    check_bind_safety,
    check_can_serve,
    default_config_path,
    load_config,
    load_raw,
    save_raw,
    write_first_config,
)
from app.errors import ConfigError
from app.passwords import hash_password, verify_password

ROOT = Path(__file__).resolve().parents[2]
HASH = hash_password("ein-langes-passwort")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kreis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def test_valid_file_is_loaded_with_types_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    config = load_text(
        tmp_path,
        f"""
[server]
host = "0.0.0.0"
port = 8443
tls_cert = "cert.pem"
tls_key = "/etc/kreis/key.pem"
trusted_proxies = ["10.0.0.0/8"]

[media]
port_min = 41000
port_max = 41010
advertised_address = "203.0.113.7"

[turn]
url = "turn:turn.example.org:3478?transport=udp"
secret = "geheim"

[logging]
level = "debug"

[gateway]
secret = "gw"
numbers = ["+49 30 1234567"]

[sip]
udp_port = 5070
anything = "kept raw"

[console]
audio = true

[groups.kreuzberg]
password_hash = "{HASH}"

[groups.team-2]
password_hash = "{HASH}"
""",
    )
    assert config.server.port == 8443
    assert config.server.tls
    assert config.server.tls_cert == str(tmp_path / "cert.pem")
    assert config.server.tls_key == "/etc/kreis/key.pem"
    assert config.server.public_url == "https://0.0.0.0:8443"
    assert config.server.trusted_proxies == ("10.0.0.0/8",)
    assert (config.media.port_min, config.media.port_max) == (41000, 41010)
    assert config.turn.url.startswith("turn:")
    assert config.logging.level == "DEBUG"
    assert config.gateway.enabled and config.gateway.numbers == ("+49 30 1234567",)
    assert config.rooms.max_participants == 50  # default
    assert config.limits.secret_attempts == 5  # default
    assert set(config.groups) == {"kreuzberg", "team-2"}
    assert verify_password("ein-langes-passwort", config.groups["kreuzberg"].password_hash)
    assert config.sip_raw == {"udp_port": 5070, "anything": "kept raw"}
    assert config.console_raw == {"audio": True}
    check_bind_safety(config)


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "")
    assert config.server.host == "127.0.0.1"
    assert config.server.public_url == "http://127.0.0.1:8080"
    assert config.rooms.empty_timeout_seconds == 300
    assert config.media.port_min == 40000
    assert config.logging.retention_days == 14
    assert config.gateway.server_url == "http://127.0.0.1:8080"
    assert not config.gateway.enabled
    assert config.groups == {}


def test_public_url_keeps_a_configured_value_without_trailing_slash(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[server]\npublic_url = "https://kreis.example.org/"\n')
    assert config.server.public_url == "https://kreis.example.org"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[media]\nport_min = "40000"', "media.port_min", "integer between 1024 and 65535"),
        ("[media]\nport_min = 80", "media.port_min", "integer between 1024 and 65535"),
        ("[media]\nport_min = 40000.5", "media.port_min", "integer"),
        ("[server]\nport = true", "server.port", "integer"),
        ("[server]\nport = 70000", "server.port", "integer between 1 and 65535"),
        ('[server]\nbehind_proxy = "yes"', "server.behind_proxy", "true or false"),
        ("[server]\nhost = 127", "server.host", "string"),
        ('[server]\ntrusted_proxies = "127.0.0.1"', "server.trusted_proxies", "list"),
        ('[server]\ntrusted_proxies = ["proxy"]', "server.trusted_proxies", "IP address"),
        ('[server]\npublic_url = "kreis.example.org"', "server.public_url", "URL"),
        ("[rooms]\nmax_participants = 0", "rooms.max_participants", "integer"),
        ("[limits]\nsecret_attempts = -1", "limits.secret_attempts", "integer"),
        ('[media]\nbind_address = "everywhere"', "media.bind_address", "IP address"),
        ("[media]\nport_min = 41000\nport_max = 40000", "media.port_min", "media.port_max"),
        ('[turn]\nurl = "stun:stun.example.org"\nsecret = "x"', "turn.url", "turn:"),
        ('[turn]\nurl = "turn:turn.example.org:3478"', "turn.secret", "turn.url"),
        ("[metrics]\nloopback_only = 1", "metrics.loopback_only", "true or false"),
        ('[logging]\nlevel = "LOUD"', "logging.level", "INFO"),
        ("[logging]\nretention_days = 0", "logging.retention_days", "integer between 1"),
        ("[gateway]\nnumbers = [491234]", "gateway.numbers", "list of strings"),
        ('[gateway]\nserver_url = "ftp://x"', "gateway.server_url", "URL"),
        ('[server]\ntls_cert = "c.pem"', "server.tls_key", "together"),
        ('server = "x"', "server", "table"),
        ('[groups.Gross]\npassword_hash = "x"', "groups.Gross", "group id"),
        ('[groups.a]\npassword_hash = "x"', "groups.a", "group id"),
        ('[groups.ok-id]\npassword_hash = "geheim"', "groups.ok-id.password_hash", "hash"),
        ("[groups.ok-id]", "groups.ok-id.password_hash", "hash"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    assert caught.value.key == key
    assert caught.value.message("en").startswith(key + ": ")
    assert words in caught.value.message("en")
    assert caught.value.message("de").startswith(key + ": ")
    assert caught.value.message("de") != caught.value.message("en")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nhots = 1", "server.hots"),
        ("[serverr]\nhost = 1", "serverr"),
        ("[media]\nport = 5", "media.port"),
        ('[groups.abc]\npassword_hash = "x"\npassword = "klartext"', "groups.abc.password"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    assert caught.value.key == key
    assert "unknown key" in caught.value.message("en")
    assert "unbekannter Schlüssel" in caught.value.message("de")


def test_unknown_key_suggests_the_near_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean host\?"):
        load_text(tmp_path, "[server]\nhots = 1")


def test_broken_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_text(tmp_path, "[server\nport = 1")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_sip_and_console_tables_are_kept_unvalidated(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[sip]\nudp_port = "not checked here"\n[console]\nx = [1]\n')
    assert config.sip_raw["udp_port"] == "not checked here"
    assert config.console_raw["x"] == [1]


def test_example_file_loads_with_every_section() -> None:
    config = load_config(ROOT / "config.example.toml")
    raw = load_raw(ROOT / "config.example.toml")
    assert set(raw) == {
        "server", "rooms", "limits", "media", "turn", "metrics", "logging",
        "gateway", "sip", "console", "groups",
    }  # fmt: skip
    # Every documented key is in the example, and at its default value.
    default = Config()
    for section in ("server", "rooms", "limits", "media", "turn", "metrics", "logging"):
        for key, value in raw[section].items():
            expected = getattr(getattr(default, section), key)
            if key == "public_url":
                continue  # resolved to http://host:port
            assert value == (list(expected) if isinstance(expected, tuple) else expected), key
        assert set(raw[section]) == set(vars(getattr(default, section))), section
    assert set(raw["gateway"]) == set(vars(default.gateway))
    for key in ("listen_address", "udp_port", "allow_from", "pin_tries", "prompts_dir"):
        assert key in config.sip_raw
    assert config.console_raw == {"audio": False}
    assert len(config.groups) == 1


def test_example_placeholder_hash_matches_no_common_password() -> None:
    config = load_config(ROOT / "config.example.toml")
    (stored,) = (g.password_hash for g in config.groups.values())
    for guess in ("", "beispiel", "passwort", "password", "kreis"):
        assert not verify_password(guess, stored)


def test_loopback_hosts_are_safe_to_bind(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind_safety(load_text(tmp_path, f'[server]\nhost = "{host}"\n'))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "kreis.example.org", ""])
def test_non_loopback_without_tls_or_proxy_is_refused(tmp_path: Path, host: str) -> None:
    config = load_text(tmp_path, f'[server]\nhost = "{host}"\n')
    with pytest.raises(ConfigError) as caught:
        check_bind_safety(config)
    assert caught.value.key == "server.host"
    assert "tls_cert" in caught.value.message("en")
    assert "behind_proxy" in caught.value.message("en")
    assert "Klartext" in caught.value.message("de")


def test_tls_makes_a_public_bind_safe(tmp_path: Path) -> None:
    config = load_text(
        tmp_path, '[server]\nhost = "0.0.0.0"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
    )
    check_bind_safety(config)


def test_behind_proxy_makes_a_public_bind_safe(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[server]\nhost = "0.0.0.0"\nbehind_proxy = true\n')
    check_bind_safety(config)


def test_serving_needs_a_group(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        check_can_serve(load_text(tmp_path, ""))
    assert caught.value.key == "groups"
    check_can_serve(load_text(tmp_path, f'[groups.ab]\npassword_hash = "{HASH}"\n'))


def test_first_config_is_private_loadable_and_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "kreis.toml"
    group_id, password = write_first_config(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert password not in path.read_text()
    config = load_config(path)
    check_can_serve(config)
    assert list(config.groups) == [group_id] == ["leitung"]
    assert verify_password(password, config.groups[group_id].password_hash)
    assert not verify_password(password + "x", config.groups[group_id].password_hash)
    assert len(password) >= 20


def test_first_config_never_overwrites(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    with pytest.raises(ConfigError):
        write_first_config(path)
    assert path.read_text() == "[server]\nport = 9000\n"


def test_save_raw_keeps_other_keys_and_mode(tmp_path: Path) -> None:
    text = "[media]\nport_min = 41000\nport_max = 41999\n\n"
    path = write(tmp_path, text + f'[groups.ab]\npassword_hash = "{HASH}"\n')
    path.chmod(0o600)
    data = load_raw(path)
    data["groups"]["cd"] = {"password_hash": HASH}
    save_raw(path, data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config(path)
    assert config.media.port_min == 41000
    assert set(config.groups) == {"ab", "cd"}
    assert [p.name for p in tmp_path.iterdir()] == ["kreis.toml"]  # no temp file left


def test_save_raw_creates_a_new_private_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "kreis.toml"
    save_raw(path, {"server": {"port": 9000}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path).server.port == 9000


def test_default_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "kreis" / "kreis.toml"
