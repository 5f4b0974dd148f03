"""The server's configuration: one typed, validated object loaded from a TOML file.

Every key is documented here (a docstring under each field) and, commented, in
`config.example.toml`. `load_config` refuses wrong types, bad values and unknown keys
with a `ConfigError` naming the key (`media.port_min: must be an integer between 1024
and 65535`). `[sip]` and `[console]` are kept raw for the gateway and the console.
`load_raw`/`save_raw` serve the `kreis group …` commands, which keep every other key.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, get_type_hints

import platformdirs
import tomli_w

from app.errors import ConfigError
from app.gatewayconfig import BadGatewayKey, GatewayConfig, gateway_from_table
from app.i18n import both
from app.passwords import generate_password, hash_password, is_valid_hash

log = logging.getLogger(__name__)

GROUP_ID_RE = re.compile(r"^[a-z0-9-]{2,32}$")
"""Group ids: 2–32 characters of a-z, 0-9 and '-'."""

FIRST_GROUP = "leitung"
"""The group `write_first_config` creates."""

_T = TypeVar("_T")


def _range(low: int, high: int) -> dict[str, Any]:
    return {"min": low, "max": high}


def _problem(key: str, name: str, **values: object) -> ConfigError:
    return ConfigError(key, *both("config." + name, key=key, **values))


def unknown_key_error(dotted: str, key: str, known: list[str]) -> ConfigError:
    """The error for a key nobody reads, with the nearest known key as a hint."""
    close = difflib.get_close_matches(key, known, n=1)
    return _problem(dotted, "unknown_near", near=close[0]) if close else _problem(dotted, "unknown")


def _check_text(key: str, value: str, check: str, base_dir: Path) -> str:
    """Validates a string by its `check` kind; returns it (paths made absolute)."""
    if check == "redis_url" and not re.match(r"^(rediss?|unix)://\S+$", value):
        raise _problem(key, "redis_url")
    if check == "url" and value and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise _problem(key, "url")
    if check == "turn_url" and value and not re.match(r"^turns?:\S+$", value):
        raise _problem(key, "turn_url")
    if check == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise _problem(key, "ip") from None
    if check == "path" and value:
        return str(base_dir / Path(value).expanduser())
    if check == "secret" and value and len(value) < 32:
        raise _problem(key, "secret_short")
    return value


def check_value(
    key: str, value: object, hint: object, meta: Mapping[str, Any], base_dir: Path
) -> Any:
    """Checks one value against its field's type and metadata; raises `ConfigError`."""
    if hint is bool:
        if not isinstance(value, bool):
            raise _problem(key, "bool")
        return value
    if hint is int:
        low, high = meta.get("min", -(2**63)), meta.get("max", 2**63)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _problem(key, "int", low=low, high=high)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise _problem(key, "str")
        choices = meta.get("choices")
        if choices is not None:
            if value.upper() not in choices:
                raise _problem(key, "choice", choices=", ".join(choices))
            return value.upper()
        return _check_text(key, value, meta.get("check", ""), base_dir)
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _problem(key, "list")
        if meta.get("check") == "networks":
            for item in value:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise _problem(key, "network", item=item) from None
        return tuple(value)
    raise TypeError(f"no check for {key}: {hint!r}")  # a programming error, not a config one


@dataclass(frozen=True)
class ServerConfig:
    """`[server]`: where the HTTP server listens and how it is reached."""

    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback needs TLS or `behind_proxy`."""
    port: int = field(default=8080, metadata=_range(1, 65535))
    """TCP port to listen on."""
    public_url: str = field(default="", metadata={"check": "url"})
    """URL people use to reach the server (room links); default `http://host:port`."""
    tls_cert: str = field(default="", metadata={"check": "path"})
    """PEM certificate chain for HTTPS; set together with `tls_key`."""
    tls_key: str = field(default="", metadata={"check": "path"})
    """PEM private key for HTTPS; set together with `tls_cert`."""
    behind_proxy: bool = False
    """True when a reverse proxy terminates TLS in front of the server."""
    trusted_proxies: tuple[str, ...] = field(
        default=("127.0.0.1", "::1"), metadata={"check": "networks"}
    )
    """Addresses or networks whose X-Forwarded-For header is honoured."""
    resume_key: str = field(default="", metadata={"check": "secret"})
    """Secret (at least 32 characters) that signs resume tokens, so that admitted people
    come back without knocking after a drop or a restart. `kreis serve` writes a random
    one into a first config; empty: derived from the groups' password hashes (then
    adding, removing or re-keying a group ends the tokens in flight)."""

    def __post_init__(self) -> None:
        if not self.public_url:
            scheme = "https" if self.tls_cert else "http"
            host = f"[{self.host}]" if ":" in self.host else self.host
            object.__setattr__(self, "public_url", f"{scheme}://{host}:{self.port}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))

    @property
    def tls(self) -> bool:
        """True when the server itself speaks HTTPS."""
        return bool(self.tls_cert and self.tls_key)


@dataclass(frozen=True)
class RoomsConfig:
    """`[rooms]`: lifetimes and sizes of rooms."""

    empty_timeout_seconds: int = field(default=300, metadata=_range(1, 86400))
    """An empty room ends after this many seconds."""
    knock_timeout_seconds: int = field(default=900, metadata=_range(10, 86400))
    """A lobby entrant nobody admits is sent away after this many seconds."""
    resume_grace_seconds: int = field(default=120, metadata=_range(0, 3600))
    """A dropped participant (or everyone, after a server restart) may come back without
    the lobby within this time; 0: never."""
    max_participants: int = field(default=50, metadata=_range(2, 1000))
    """Admitted participants (including phone callers) per room; the lobby does not
    count, so entrants cannot fill a room."""
    max_lobby: int = field(default=100, metadata=_range(1, 10000))
    """Entrants waiting in one room's lobby at once."""
    max_rooms: int = field(default=200, metadata=_range(1, 100000))
    """Live rooms on this server."""
    help_line: str = ""
    """One line shown on the pages that end a visit (denied, removed, ended), for
    example a group's help line: "Telefonseelsorge 0800 111 0 111". Empty: none."""


@dataclass(frozen=True)
class LimitsConfig:
    """`[limits]`: protection against floods and password guessing."""

    max_frame_bytes: int = field(default=65536, metadata=_range(1024, 16 * 1024 * 1024))
    """Largest WebSocket frame; a bigger one closes the connection."""
    flood_messages_per_10s: int = field(default=200, metadata=_range(10, 100000))
    """More messages than this in 10 seconds close the connection."""
    secret_attempts: int = field(default=5, metadata=_range(1, 1000))
    """Wrong secrets allowed per connection and source address within the window."""
    secret_window_seconds: int = field(default=60, metadata=_range(1, 86400))
    """Window for `secret_attempts`."""
    secret_lockout_seconds: int = field(default=300, metadata=_range(1, 86400))
    """How long `rate_limited` is answered once the attempts are used up."""
    connections_per_address: int = field(default=30, metadata=_range(1, 100000))
    """Open signalling connections per source address (IPv6: per /64) that have not
    logged in; leaders and the gateway do not count."""
    lobby_per_address: int = field(default=10, metadata=_range(1, 100000))
    """Lobby entrants and early knocks per source address at once, over all rooms."""
    knocks_per_address: int = field(default=30, metadata=_range(1, 100000))
    """Knocks (`join`s) per source address within `knock_window_seconds`."""
    knock_window_seconds: int = field(default=600, metadata=_range(1, 86400))
    """Window for `knocks_per_address`."""
    lobby_chat_per_minute: int = field(default=10, metadata=_range(1, 10000))
    """Chat lines a lobby entrant may send to the leaders per minute (and per source
    address); lobby lines are at most 500 characters."""
    slug_probes_per_address: int = field(default=20, metadata=_range(1, 100000))
    """How often a leader may hit another group's live room (`check_slug`,
    `create_room`) within `knock_window_seconds` before `rate_limited`."""


@dataclass(frozen=True)
class MediaConfig:
    """`[media]`: where the SFU sends and receives audio and video (UDP)."""

    bind_address: str = field(default="127.0.0.1", metadata={"check": "ip"})
    """Local address the media sockets bind to."""
    advertised_address: str = field(default="127.0.0.1", metadata={"check": "ip"})
    """Address announced to clients in ICE candidates (the public one behind 1:1 NAT)."""
    port_min: int = field(default=40000, metadata=_range(1024, 65535))
    """Lowest UDP port for media."""
    port_max: int = field(default=40999, metadata=_range(1024, 65535))
    """Highest UDP port for media."""
    workers: int = field(default=1, metadata=_range(1, 64))
    """SFU worker processes (1: in the server process)."""


@dataclass(frozen=True)
class TurnConfig:
    """`[turn]`: an own TURN server for clients behind strict firewalls."""

    url: str = field(default="", metadata={"check": "turn_url"})
    """`turn:` or `turns:` URL; empty: no TURN server is offered."""
    secret: str = ""
    """Shared secret of the TURN server (coturn `static-auth-secret`)."""
    ttl_seconds: int = field(default=3600, metadata=_range(60, 7 * 86400))
    """Lifetime of the credentials handed to a client."""


@dataclass(frozen=True)
class MetricsConfig:
    """`[metrics]`: the Prometheus endpoint `/metrics` (aggregate counts only)."""

    token: str = ""
    """Bearer token required for `/metrics`; empty: no token needed."""
    loopback_only: bool = True
    """Answer `/metrics` only to requests from loopback."""


@dataclass(frozen=True)
class LoggingConfig:
    """`[logging]`: log level, place and retention (logs never hold personal data)."""

    level: str = field(
        default="INFO", metadata={"choices": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}
    )
    """Log level."""
    dir: str = field(default="", metadata={"check": "path"})
    """Directory for rotated log files; empty: stderr (journald)."""
    retention_days: int = field(default=14, metadata=_range(1, 3650))
    """Log files older than this are deleted."""


@dataclass(frozen=True)
class GroupConfig:
    """`[groups.<id>]`: a group whose leaders may start rooms."""

    password_hash: str = ""
    """scrypt hash of the group password (`kreis group passwd` writes it)."""


@dataclass(frozen=True)
class ClusterConfig:
    """`[cluster]`: several `kreis serve` nodes on one Redis (docs/cluster.md). Without
    this table the server runs alone and needs no Redis."""

    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata={"check": "redis_url"})
    """Redis holding the routing (never meetings): `redis://`, `rediss://` (TLS) or
    `unix://`; a password goes in the URL (`rediss://:secret@host:6380/0`)."""
    tls_ca: str = field(default="", metadata={"check": "path"})
    """CA certificate that signed Redis's TLS certificate (for `rediss://`)."""
    sentinels: tuple[str, ...] = ()
    """`host:port` of Redis Sentinels; when set, the master named `sentinel_master` is
    asked of them and `redis_url` supplies only password, database and TLS."""
    sentinel_master: str = "kreis"
    """The Sentinel master name."""
    key: str = ""
    """Secret shared by all nodes (at least 32 characters), never stored in Redis: keys
    in Redis are HMACs under it, and resume tokens are signed with it."""
    address: str = field(default="", metadata={"check": "url"})
    """URL the other nodes reach this node's signalling at (`http://10.0.0.2:8080`)."""
    allow_persisting_redis: bool = False
    """Run even against a Redis that writes to disk (`save`, `appendonly`). Off: such
    a Redis is refused, because routing keys must not outlive a restart."""
    heartbeat_seconds: int = field(default=2, metadata=_range(1, 60))
    """How often a node refreshes its registry entry and its rooms' keys."""
    ttl_seconds: int = field(default=6, metadata=_range(2, 600))
    """Lifetime of every key; a dead node's rooms are free again after this long."""


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with `load_config`."""

    server: ServerConfig = field(default_factory=ServerConfig)
    """`[server]`."""
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    """`[rooms]`."""
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    """`[limits]`."""
    media: MediaConfig = field(default_factory=MediaConfig)
    """`[media]`."""
    turn: TurnConfig = field(default_factory=TurnConfig)
    """`[turn]`."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """`[metrics]`."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """`[logging]`."""
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    """`[gateway]`."""
    groups: Mapping[str, GroupConfig] = field(default_factory=lambda: MappingProxyType({}))
    """Groups by id."""
    sip_raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The `[sip]` table, unvalidated (the gateway validates it)."""
    console_raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The `[console]` table, unvalidated (the console validates it)."""
    cluster: ClusterConfig | None = None
    """`[cluster]`, or None: one server alone (the embedded default)."""


_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "rooms": RoomsConfig,
    "limits": LimitsConfig,
    "media": MediaConfig,
    "turn": TurnConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
}
_RAW_SECTIONS = ("sip", "console")
_KNOWN_TOP = (*_SECTIONS, "gateway", "groups", "cluster", *_RAW_SECTIONS)


def _table(name: str, raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _problem(name, "table")
    return raw


def _section(cls: type[_T], name: str, raw: object, base_dir: Path) -> _T:
    table = _table(name, raw)
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in table:
        if key not in known:
            raise unknown_key_error(f"{name}.{key}", key, known)
    values = {
        f.name: check_value(f"{name}.{f.name}", table[f.name], hints[f.name], f.metadata, base_dir)
        for f in fields(cls)  # type: ignore[arg-type]
        if f.name in table
    }
    return cls(**values)


def check_group_id(group_id: str) -> None:
    """Raises `ConfigError` unless `group_id` is 2–32 characters of a-z, 0-9 and '-'."""
    if not isinstance(group_id, str) or not GROUP_ID_RE.match(group_id):
        raise _problem(f"groups.{group_id}", "group_id")


def _groups(raw: object) -> Mapping[str, GroupConfig]:
    table = _table("groups", raw)
    groups: dict[str, GroupConfig] = {}
    for group_id, entry in table.items():
        check_group_id(group_id)
        entry_table = _table(f"groups.{group_id}", entry)
        for key in entry_table:
            if key != "password_hash":
                raise unknown_key_error(f"groups.{group_id}.{key}", key, ["password_hash"])
        key = f"groups.{group_id}.password_hash"
        stored = entry_table.get("password_hash")
        if not isinstance(stored, str) or not is_valid_hash(stored):
            raise _problem(key, "hash")
        groups[group_id] = GroupConfig(password_hash=stored)
    return MappingProxyType(groups)


def _gateway(raw: object) -> GatewayConfig:
    """`[gateway]`, checked by the same function the dial-in gateway uses."""
    try:
        return gateway_from_table(_table("gateway", raw))
    except BadGatewayKey as bad:
        raise ConfigError(bad.key, bad.english, bad.german) from None


def _cluster(raw: object, base_dir: Path) -> ClusterConfig:
    cluster = _section(ClusterConfig, "cluster", raw, base_dir)
    if len(cluster.key) < 32:
        raise _problem("cluster.key", "cluster_key")
    if not cluster.address:
        raise _problem("cluster.address", "cluster_address")
    if cluster.ttl_seconds < 2 * cluster.heartbeat_seconds:
        raise _problem("cluster.ttl_seconds", "cluster_ttl")
    return cluster


def _cross_checks(config: Config) -> None:
    if config.media.port_min > config.media.port_max:
        raise _problem("media.port_min", "port_order")
    if bool(config.server.tls_cert) != bool(config.server.tls_key):
        raise _problem(
            "server.tls_key" if config.server.tls_cert else "server.tls_cert", "tls_pair"
        )
    if config.turn.url and not config.turn.secret:
        raise _problem("turn.secret", "turn_secret")


def config_from_dict(data: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """A validated `Config` from parsed TOML; relative paths are relative to `base_dir`."""
    base = base_dir if base_dir is not None else Path.cwd()
    for key in data:
        if key not in _KNOWN_TOP:
            raise unknown_key_error(key, key, list(_KNOWN_TOP))
    sections: dict[str, Any] = {
        name: _section(cls, name, data.get(name, {}), base) for name, cls in _SECTIONS.items()
    }
    raw = {name: MappingProxyType(dict(_table(name, data.get(name, {})))) for name in _RAW_SECTIONS}
    config = Config(
        **sections,
        gateway=_gateway(data.get("gateway", {})),
        groups=_groups(data.get("groups", {})),
        sip_raw=raw["sip"],
        console_raw=raw["console"],
        cluster=_cluster(data["cluster"], base) if "cluster" in data else None,
    )
    _cross_checks(config)
    return config


def load_raw(path: Path) -> dict[str, Any]:
    """The parsed TOML file as plain dicts; `ConfigError` when unreadable or not TOML."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            "", f"the file {path} does not exist", f"die Datei {path} gibt es nicht"
        ) from None
    except OSError as e:
        raise ConfigError(
            "", f"cannot read {path}: {e.strerror}", f"{path} ist nicht lesbar: {e.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            "", f"{path} is not valid TOML: {e}", f"{path} ist kein gültiges TOML: {e}"
        ) from None


def load_config(path: Path) -> Config:
    """Reads and validates the TOML file at `path`; raises `ConfigError` naming the key."""
    path = Path(path)
    return config_from_dict(load_raw(path), base_dir=path.resolve().parent)


def save_raw(path: Path, data: Mapping[str, Any]) -> None:
    """Writes `data` as TOML to `path` atomically (temp file + rename).

    The file keeps its mode (0600 for a new file, never readable by others) and, when
    run as root, its owner, so the service user can still read it.
    """
    path = Path(path).resolve()
    text = tomli_w.dumps(dict(data))
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    mode = (st.st_mode & 0o770) if st else 0o600
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=".kreis-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, mode)
        if st is not None and os.geteuid() == 0:
            os.chown(tmp_name, st.st_uid, st.st_gid)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    log.info("configuration file rewritten")


def default_config_path() -> Path:
    """`kreis.toml` in the user's config directory (`~/.config/kreis/kreis.toml`)."""
    return Path(platformdirs.user_config_dir("kreis")) / "kreis.toml"


_FIRST_CONFIG = """\
# Kreis configuration, written on first start.
# Every key is explained in config.example.toml. Manage groups with
#   kreis group add NAME | kreis group passwd NAME | kreis group remove NAME | kreis group list
# Kreis-Konfiguration, beim ersten Start geschrieben. Alle Schlüssel: config.example.toml.

[server]
host = "127.0.0.1"
port = 8080
# Signs resume tokens (admitted people come back without knocking after a restart).
resume_key = "{resume_key}"

[groups.{group}]
password_hash = "{password_hash}"
"""


def write_first_config(path: Path, group_id: str = FIRST_GROUP) -> tuple[str, str]:
    """Writes a first config with one group and a generated password (mode 0600).

    Returns (group id, password); the password exists nowhere else, so the caller
    must show it once. Refuses to overwrite an existing file.
    """
    check_group_id(group_id)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = generate_password()
    text = _FIRST_CONFIG.format(
        group=group_id,
        password_hash=hash_password(password),
        resume_key=secrets.token_urlsafe(32),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            "",
            f"{path} exists already; not overwritten",
            f"{path} gibt es schon; nicht überschrieben",
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode is reduced by the umask; be explicit
    log.info("first configuration written")
    return group_id, password


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resume_key(config: Config) -> bytes:
    """The key resume tokens are signed with (app/resume.py): `server.resume_key`, or,
    without one, derived from the groups' password hashes, which are secrets only this
    server holds (salted scrypt hashes) and survive a restart unchanged. In a cluster,
    the cluster key: every node must verify a token another node issued."""
    if config.cluster is not None:
        return hashlib.sha256(b"kreis-resume\0cluster\0" + config.cluster.key.encode()).digest()
    explicit = config.server.resume_key
    if explicit:
        return hashlib.sha256(b"kreis-resume\0" + explicit.encode()).digest()
    if not config.groups:  # nothing secret to derive from (no room can start anyway)
        return secrets.token_bytes(32)
    mac = hmac.new(b"kreis-resume-derived", digestmod=hashlib.sha256)
    for group_id in sorted(config.groups):
        mac.update(group_id.encode() + b"\0" + config.groups[group_id].password_hash.encode())
        mac.update(b"\0")
    return mac.digest()


def check_bind_safety(config: Config) -> None:
    """Refuses to listen beyond loopback without TLS or a TLS-terminating proxy.

    Passwords and chat would otherwise cross the network in clear text.
    """
    server = config.server
    if _is_loopback(server.host) or server.tls or server.behind_proxy:
        return
    raise _problem("server.host", "unsafe_bind", host=server.host or "0.0.0.0")


def check_can_serve(config: Config) -> None:
    """Everything `kreis serve` needs: at least one group, and a safe bind address."""
    if not config.groups:
        raise _problem("groups", "no_groups")
    check_bind_safety(config)
