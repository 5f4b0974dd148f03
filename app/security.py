"""HTTP security headers on every response, and the client's address behind a proxy.

`setup_security(app, config)` makes every response Kreis sends carry:

- a strict Content-Security-Policy: everything from our own origin only, no inline
  script or style, no frames, no plugins. The web client loads nothing from third
  parties, and this header makes the browser enforce it. (`connect-src 'self'` also
  covers the same-origin `ws:`/`wss:` signalling socket in current browsers; a test
  checks that in Chromium.)
- `Strict-Transport-Security` when Kreis terminates TLS itself or sits behind a TLS
  proxy (`server.behind_proxy`): HTTPS only, remembered for a year;
- `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` (a room's URL is its secret:
  it must never leak to another site as a referrer), `X-Content-Type-Options: nosniff`,
  a `Permissions-Policy` that allows camera, microphone and screen capture for our own
  origin and nothing else, and cross-origin isolation headers;
- `Cache-Control: no-store` on HTML and every dynamic answer, so a shared computer's
  browser cache keeps no room page.

The headers are added in `on_response_prepare`, not in a middleware: that signal fires
for every response just before its headers go out, including the WebSocket upgrade,
static files and the 404s the router raises, which a middleware cannot all reach.

`client_address(request, config)` is the address rate limits use: the TCP peer, or, when
the peer is a trusted proxy, the right-most untrusted address in `X-Forwarded-For`. It
is for counting attempts in memory only; it must never be logged.

Deutsch: Strenge Sicherheits-Header auf jeder Antwort (keine fremden Quellen, keine
Einbettung, kein Referrer, kein Cache); die Client-Adresse wird nur für die
Begrenzung von Anmeldeversuchen verwendet und nie protokolliert.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from app.config import Config

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)

PERMISSIONS_POLICY = ", ".join(
    [
        "camera=(self)",
        "microphone=(self)",
        "display-capture=(self)",
        "fullscreen=(self)",
        "autoplay=(self)",
        "speaker-selection=(self)",
        "geolocation=()",
        "payment=()",
        "usb=()",
        "serial=()",
        "bluetooth=()",
        "hid=()",
        "midi=()",
        "accelerometer=()",
        "gyroscope=()",
        "magnetometer=()",
        "browsing-topics=()",
    ]
)

HSTS = "max-age=31536000; includeSubDomains"

STATIC_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Permitted-Cross-Domain-Policies": "none",
}


def tls_enabled(config: Config) -> bool:
    """True when browsers reach Kreis over HTTPS: own certificate or a TLS proxy."""
    server = config.server
    return bool(server.tls_cert or server.behind_proxy or server.public_url.startswith("https://"))


def security_headers(config: Config) -> dict[str, str]:
    """The headers every response gets (without the content-dependent Cache-Control)."""
    headers = dict(STATIC_HEADERS)
    if tls_enabled(config):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def setup_security(app: web.Application, config: Config) -> None:
    """Adds the security headers to every response of `app`."""
    headers = security_headers(config)

    async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in headers.items():
            response.headers[name] = value
        is_html = (response.content_type or "").startswith("text/html")
        is_static = request.path.startswith("/static/")
        if is_html or not is_static:
            response.headers["Cache-Control"] = "no-store"
            if is_html:
                response.headers["Pragma"] = "no-cache"
        # aiohttp names itself and its version by default; nobody needs to know.
        response.headers.pop("Server", None)

    app.on_response_prepare.append(add_security_headers)


# --- client address --------------------------------------------------------------------


def _parse_ip(value: str) -> IPAddress | None:
    value = value.strip().strip('"')
    if value.startswith("["):  # "[2001:db8::1]:443"
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.split(":", 1)[0]
    value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trusted_networks(config: Config) -> list[IPNetwork]:
    """`server.trusted_proxies` as networks (single addresses become /32 or /128)."""
    networks: list[IPNetwork] = []
    for entry in config.server.trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            continue
    return networks


def _is_trusted(address: IPAddress, networks: list[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def peer_address(request: web.BaseRequest) -> IPAddress | None:
    """The TCP peer's address, ignoring anything the client claims in headers."""
    transport = request.transport
    peer: Any = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, (tuple, list)) and peer:
        return _parse_ip(str(peer[0]))
    return _parse_ip(request.remote or "")


def client_address(request: web.BaseRequest, config: Config) -> str:
    """The client's address for rate limiting: honours X-Forwarded-For only from
    trusted proxies (`server.trusted_proxies`; with `server.behind_proxy` and no list,
    loopback is trusted). Walks the header from the right and returns the first hop
    that is not itself a trusted proxy. Returns "unknown" when there is no peer.
    """
    peer = peer_address(request)
    if peer is None:
        return "unknown"
    networks = trusted_networks(config)
    if not networks and config.server.behind_proxy:
        networks = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    hops = [h for part in request.headers.getall("X-Forwarded-For", []) for h in part.split(",")]
    current = peer
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            break  # a garbled hop: trust nothing further left of it
        current = address
        if not _is_trusted(address, networks):
            break
    return str(current)


def address_key(address: str) -> str:
    """The unit one source counts as for per-address limits: the address itself for
    IPv4, its /64 network for IPv6 (one home or host usually gets a whole /64, so
    counting single IPv6 addresses would let one attacker act as billions)."""
    parsed = _parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address) and not parsed.is_loopback:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def is_loopback_client(request: web.BaseRequest, config: Config) -> bool:
    """True when the real client (after trusted proxies) is on this machine."""
    address = _parse_ip(client_address(request, config))
    return address is not None and address.is_loopback
