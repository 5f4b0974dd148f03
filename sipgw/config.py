"""The dial-in gateway's configuration: the `[gateway]` and `[sip]` tables of the shared TOML.

The gateway runs as its own process (possibly on another host), so it reads only the
two tables it needs and never imports the server's config module; `[gateway]` is read
by `app.gatewayconfig`, the one parser the server uses as well. Every key is typed
and checked here; a bad value raises `ConfigError` naming the key, so an operator sees
`[sip] udp_port must be an integer 1-65535` instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.gatewayconfig import BadGatewayKey, GatewayConfig, gateway_from_table
from sipgw.errors import ConfigError

log = logging.getLogger(__name__)

LANGUAGES = ("de", "en")
MAX_CALL_SLOTS = 4
"""Calls one gateway process can hold: the pjsua2-python wheel is built with
PJSUA_MAX_CALLS = 4 (measured: a larger maxCalls is clamped to 4)."""


@dataclass(frozen=True)
class SipConfig:
    """`[sip]`: the SIP side of the gateway."""

    listen_address: str = "127.0.0.1"
    """Address the SIP transports bind to."""
    public_address: str = ""
    """Address callers reach this machine at when it sits behind NAT (a router
    forwarding the SIP and RTP ports): written into Via, Contact, Record-Route and the
    SDP instead of `listen_address`. Empty: `listen_address`."""
    udp_port: int = 5060
    """UDP port (0 disables UDP)."""
    tcp_port: int = 5060
    """TCP port (0 disables TCP)."""
    tls_port: int = 5061
    """TLS port, used only when `tls_cert` and `tls_key` are set."""
    tls_cert: Path | None = None
    """PEM certificate for SIP over TLS."""
    tls_key: Path | None = None
    """PEM private key for SIP over TLS."""
    registrar: str | None = None
    """SIP URI of a trunk registrar (e.g. `sip:sip.example.net`); no registration if unset."""
    user: str | None = None
    """Account user at the trunk."""
    password: str | None = None
    """Account password at the trunk."""
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=lambda: (
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("::1/128"),
        )
    )
    """Source networks whose INVITEs are accepted; everything else gets 403."""
    trust_identity_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Trunks whose `P-Asserted-Identity` names the caller (else the From URI does)."""
    pin_tries: int = 3
    """Wrong PINs per call before the gateway hangs up."""
    lockout_seconds: int = 300
    """Ignored (older configs still load): the server locks callers out
    (`[gateway] caller_tries`, `[limits] secret_lockout_seconds`)."""
    prompts_dir: Path | None = None
    """Directory with `de/` and `en/` WAV prompts overriding the built-in ones."""
    language: str = "de"
    """Language of the prompts: `de`, `en`, or `choose` (the caller presses 1 or 2)."""
    rtp_port: int = 4000
    """First RTP port for calls."""
    max_calls: int = 4
    """Concurrent calls accepted per gateway process; at most 4 (the pjsua2-python
    wheel's call slots, a compile-time limit; larger values are clamped with a warning).
    Further INVITEs get 486 Busy Here."""
    processes: int = 1
    """Gateway backend processes. 1: one pjsip process listens itself. More: Kamailio
    (`sipgw.kamailio`) listens on the public ports and spreads calls over that many
    backends; capacity is `processes * max_calls`."""
    gateways: tuple[tuple[str, int], ...] = ()
    """Gateways on other machines (`"host:port"`, UDP), behind the same Kamailio edge as
    the local processes; each runs `kreis dial-in` with `edge_address` naming the edge."""
    edge_address: str = ""
    """On a gateway behind a Kamailio edge on another machine: the edge's address, whose
    `X-Kreis-Source` header this gateway believes. Empty: only `FRONT_ADDRESS` (the
    local edge) is believed."""
    worker_base_port: int = 0
    """First internal SIP port (UDP on 127.0.0.1) of the backends, one port each; 0 lets
    the supervisor pick free ports. (The key keeps the name operators already use from
    when the backends were called workers; "worker" now means an SFU process only.)"""

    def asserts_identity(self, address: str) -> bool:
        """True if `address` is a trunk whose P-Asserted-Identity is believed."""
        return _inside(address, self.trust_identity_from)

    def allows(self, address: str) -> bool:
        """True if `address` (an IP, without port) is inside `allow_from`."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.allow_from)


@dataclass(frozen=True)
class BackendRole:
    """How a backend process behind Kamailio differs from a lone gateway.

    Not read from TOML: the supervisor hands it to each backend on its command line.
    """

    index: int
    """The backend's number, 0 to `processes - 1`."""
    sip_port: int
    """Internal SIP port (UDP only, on `FRONT_ADDRESS`)."""
    rtp_port: int
    """First RTP port of this backend (its own range, on the public `listen_address`)."""


FRONT_ADDRESS = "127.0.0.1"
"""Where Kamailio and its local backends talk to each other; a backend trusts the
edge's `X-Kreis-Source` header only in messages from this address."""


def rtp_stride(sip: SipConfig) -> int:
    """RTP ports one gateway process uses from its `rtp_port` on (two per call, spare)."""
    return 2 * sip.max_calls + 16


def backend_role(sip: SipConfig, index: int, sip_port: int) -> BackendRole:
    """The role of backend `index`: its internal SIP port and its own RTP range."""
    return BackendRole(index, sip_port, sip.rtp_port + index * rtp_stride(sip))


@dataclass(frozen=True)
class Config:
    """Everything `kreis dial-in` needs."""

    gateway: GatewayConfig
    sip: SipConfig


def _get(table: dict[str, Any], section: str, key: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    # bool is an int in Python; a port of `true` is a mistake worth naming.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"[{section}] {key} must be an integer")
    if kind is not int and not isinstance(value, kind):
        raise ConfigError(f"[{section}] {key} must be of type {kind.__name__}")
    return value


def _port(table: dict[str, Any], key: str, default: int) -> int:
    value = int(_get(table, "sip", key, int, default))
    if not 0 <= value <= 65535:
        raise ConfigError(f"[sip] {key} must be an integer 0-65535")
    return value


def _path(table: dict[str, Any], key: str) -> Path | None:
    value = _get(table, "sip", key, str, None)
    return Path(value).expanduser() if value else None


def parse_gateway(table: dict[str, Any]) -> GatewayConfig:
    """`[gateway]` through the one parser the server uses too; the gateway needs a secret."""
    try:
        gateway = gateway_from_table(table)
    except BadGatewayKey as bad:
        raise ConfigError(f"[gateway] {bad.name}: {bad.english} / {bad.german}") from None
    if not gateway.secret:
        raise ConfigError("[gateway] secret is missing")
    return gateway


def _inside(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


def _networks(table: dict[str, Any], key: str) -> tuple[Any, ...] | None:
    raw = _get(table, "sip", key, list, None)
    if raw is None:
        return None
    nets = []
    for item in raw:
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError as exc:
            raise ConfigError(f"[sip] {key} has a bad network: {exc}") from None
    return tuple(nets)


def _public_address(table: dict[str, Any]) -> str:
    raw = str(_get(table, "sip", "public_address", str, "")).strip()
    if raw:
        try:
            ipaddress.ip_address(raw)
        except ValueError:
            raise ConfigError(
                f"[sip] public_address must be an IP address, not {raw[:60]!r}"
            ) from None
    return raw


def _gateways(table: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    raw = _get(table, "sip", "gateways", list, [])
    out = []
    for item in raw:
        host, sep, port = str(item).rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            raise ConfigError(
                f'[sip] gateways must list "address:port" entries, not {str(item)[:60]!r}'
            ) from None
        if not sep or not 1 <= number <= 65535:
            raise ConfigError('[sip] gateways must list "address:port" entries')
        out.append((host, number))
    return tuple(out)


def _address(table: dict[str, Any], key: str) -> str:
    value = str(_get(table, "sip", key, str, "")).strip()
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(f"[sip] {key} must be an IP address") from None
    return value


def parse_sip(table: dict[str, Any]) -> SipConfig:
    """Builds `SipConfig` from the `[sip]` table."""
    defaults = SipConfig()
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    raw_allow = _get(table, "sip", "allow_from", list, None)
    if raw_allow is None:
        nets = list(defaults.allow_from)
    else:
        for item in raw_allow:
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError as exc:
                raise ConfigError(f"[sip] allow_from has a bad network: {exc}") from None
    language = _get(table, "sip", "language", str, "de")
    if language not in (*LANGUAGES, "choose"):
        raise ConfigError('[sip] language must be "de", "en" or "choose"')
    cert, key = _path(table, "tls_cert"), _path(table, "tls_key")
    if (cert is None) != (key is None):
        raise ConfigError("[sip] tls_cert and tls_key must be set together")
    pin_tries = int(_get(table, "sip", "pin_tries", int, defaults.pin_tries))
    if not 1 <= pin_tries <= 10:
        raise ConfigError("[sip] pin_tries must be between 1 and 10")
    lockout = int(_get(table, "sip", "lockout_seconds", int, defaults.lockout_seconds))
    if lockout < 0:
        raise ConfigError("[sip] lockout_seconds must not be negative")
    max_calls = int(_get(table, "sip", "max_calls", int, defaults.max_calls))
    if max_calls < 1:
        raise ConfigError("[sip] max_calls must be at least 1")
    if max_calls > MAX_CALL_SLOTS:
        log.warning(
            "[sip] max_calls = %d, but pjsua2 has %d call slots: using %d",
            max_calls,
            MAX_CALL_SLOTS,
            MAX_CALL_SLOTS,
        )
        max_calls = MAX_CALL_SLOTS
    registrar = _get(table, "sip", "registrar", str, None) or None
    if registrar and not registrar.startswith(("sip:", "sips:")):
        raise ConfigError("[sip] registrar must be a SIP URI (sip:host)")
    processes = int(_get(table, "sip", "processes", int, defaults.processes))
    if not 1 <= processes <= 32:
        raise ConfigError("[sip] processes must be between 1 and 32")
    rtp_port = _port(table, "rtp_port", defaults.rtp_port)
    if rtp_port + processes * (2 * max_calls + 16) > 65536:
        raise ConfigError("[sip] rtp_port leaves too few ports for all processes")
    return SipConfig(
        listen_address=_get(table, "sip", "listen_address", str, defaults.listen_address),
        public_address=_public_address(table),
        udp_port=_port(table, "udp_port", defaults.udp_port),
        tcp_port=_port(table, "tcp_port", defaults.tcp_port),
        tls_port=_port(table, "tls_port", defaults.tls_port),
        tls_cert=cert,
        tls_key=key,
        registrar=registrar,
        user=_get(table, "sip", "user", str, None) or None,
        password=_get(table, "sip", "password", str, None) or None,
        allow_from=tuple(nets),
        trust_identity_from=_networks(table, "trust_identity_from") or (),
        pin_tries=pin_tries,
        lockout_seconds=lockout,
        prompts_dir=_path(table, "prompts_dir"),
        language=language,
        rtp_port=rtp_port,
        max_calls=max_calls,
        processes=processes,
        gateways=_gateways(table),
        edge_address=_address(table, "edge_address"),
        worker_base_port=_port(table, "worker_base_port", defaults.worker_base_port),
    )


def parse(data: dict[str, Any]) -> Config:
    """Builds `Config` from a parsed TOML document (other tables are ignored)."""
    gateway = data.get("gateway")
    if not isinstance(gateway, dict):
        raise ConfigError("[gateway] table is missing")
    sip = data.get("sip", {})
    if not isinstance(sip, dict):
        raise ConfigError("[sip] must be a table")
    return Config(parse_gateway(gateway), parse_sip(sip))


def load(path: Path) -> Config:
    """Reads and checks the TOML file at `path`."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse(data)
