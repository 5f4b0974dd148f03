"""SIP messages as the front sees them: parsing, header lists, and the rewrites a proxy
does (Via with `received`/`rport`, Route/Record-Route values, our branch, the
`X-Kreis-Source` header, the front's own responses).

Pure message handling, no sockets: `sipgw.front` does the transport, the Call-ID table
and the routing. A message is kept as (lower-case name, value) lines; the list headers
Via, Route and Record-Route are split into one line per value, so pushing our Via or
popping our Route is a list operation. `parse` only checks syntax and size;
`SipMessage.problem()` says whether a message is complete enough to forward.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MAX_HEADERS = 80
BRANCH_PREFIX = "z9hG4bK-kf-"
"""Start of every Via branch the front puts in (how it recognises its own Via)."""
SOURCE_HEADER = "X-Kreis-Source"
AGENT = "Kreis dial-in"
"""The name in our own responses: no version a scanner could look up."""

_COMPACT = {
    "v": "via",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
_LISTS = {"via", "route", "record-route"}
_TOKEN = re.compile(r"^[A-Za-z0-9!%*+_.`'~-]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")
_VIA = re.compile(r"^SIP/2\.0/([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[^\s;:]+)(?::(\d+))?\s*(.*)$")
_URI_HOST = re.compile(r"sips?:(?:[^@;>]*@)?(\[[0-9A-Fa-f:.]+\]|[^:;>?]+)(?::(\d+))?", re.I)
_TAG = re.compile(r";\s*tag=([^;,\s]+)", re.I)


class SipParseError(ValueError):
    """The bytes are not a SIP message this front can handle."""


@dataclass
class SipMessage:
    """A SIP message as header lines; list headers (Via, Route, Record-Route) are split
    into one line per value so that pushing and popping is a list operation."""

    first: str
    headers: list[tuple[str, str]]
    """(lower-case full name, value) in order."""
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return not self.first.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0].upper() if self.is_request else ""

    @property
    def status(self) -> int:
        return 0 if self.is_request else int(self.first[8:11])

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    def get(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def remove(self, name: str) -> None:
        self.headers = [(n, v) for n, v in self.headers if n != name]

    def push(self, name: str, value: str) -> None:
        """Adds `value` above the first `name` header (at the top if there is none)."""
        for i, (n, _) in enumerate(self.headers):
            if n == name:
                self.headers.insert(i, (name, value))
                return
        self.headers.insert(0, (name, value))

    def pop(self, name: str) -> str | None:
        """Removes and returns the topmost `name` value."""
        for i, (n, v) in enumerate(self.headers):
            if n == name:
                del self.headers[i]
                return v
        return None

    def replace_top(self, name: str, value: str) -> None:
        for i, (n, _) in enumerate(self.headers):
            if n == name:
                self.headers[i] = (name, value)
                return

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq_method(self) -> str:
        parts = (self.get("cseq") or "").split()
        return parts[1].upper() if len(parts) == 2 else ""

    @property
    def to_tag(self) -> str:
        value = self.get("to") or ""
        match = _TAG.search(value[value.find(">") + 1 :] if ">" in value else value)
        return match.group(1) if match else ""

    def problem(self) -> str | None:
        """Why this message is not valid SIP for us (None when it is)."""
        for name in ("from", "to", "call-id", "cseq"):
            if len(self.values(name)) != 1:
                return f"need exactly one {name}"
        parts = (self.get("cseq") or "").split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
            return "bad CSeq"
        if self.is_request and parts[1].upper() != self.method:
            return "CSeq method differs"
        mf = self.get("max-forwards")
        if mf is not None and (not mf.strip().isdigit() or len(mf.strip()) > 3):
            return "bad Max-Forwards"
        if parse_via(self.values("via")[0]) is None:
            return "bad Via"
        return None

    def encode(self) -> bytes:
        lines = [self.first]
        for name, value in self.headers:
            if name != "content-length":
                lines.append(f"{_canonical(name)}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _canonical(name: str) -> str:
    special = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}
    if name in special:
        return special[name]
    if name == SOURCE_HEADER.lower():
        return SOURCE_HEADER
    return "-".join(part.capitalize() for part in name.split("-"))


def split_list(value: str) -> list[str]:
    """Splits a header value at commas outside quotes and angle brackets."""
    out: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def parse(data: bytes) -> SipMessage:
    """Parses one SIP message (raises SipParseError); semantic checks: `problem()`."""
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = data.find(b"\n\n"), 2
    if end < 0:
        raise SipParseError("no end of headers")
    try:
        head = data[:end].decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    rest = data[end + sep :]
    lines = head.replace("\r\n", "\n").split("\n")
    first = lines[0].strip()
    if not (_REQUEST_LINE.match(first) or _STATUS_LINE.match(first)):
        raise SipParseError("bad start line")
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        elif line:
            unfolded.append(line)
    if len(unfolded) > MAX_HEADERS:
        raise SipParseError("too many headers")
    headers: list[tuple[str, str]] = []
    for line in unfolded:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipParseError("bad header line")
        key = _COMPACT.get(name.lower(), name.lower())
        value = value.strip()
        if key in _LISTS:
            headers.extend((key, v) for v in split_list(value))
        else:
            headers.append((key, value))
    body = rest
    lengths = [v for n, v in headers if n == "content-length"]
    if lengths:
        if len(lengths) > 1 or not lengths[0].isdigit():
            raise SipParseError("bad Content-Length")
        length = int(lengths[0])
        if length > len(rest):
            raise SipParseError("truncated body")
        body = rest[:length]
    return SipMessage(first, headers, body)


@dataclass
class Via:
    transport: str
    host: str
    port: int | None
    params: list[tuple[str, str | None]]

    def param(self, name: str) -> str | None:
        for k, v in self.params:
            if k == name:
                return v if v is not None else ""
        return None

    def set(self, name: str, value: str | None) -> None:
        for i, (k, _) in enumerate(self.params):
            if k == name:
                self.params[i] = (name, value)
                return
        self.params.append((name, value))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"SIP/2.0/{self.transport} {self.host}{port}{params}"


def parse_via(value: str) -> Via | None:
    match = _VIA.match(value.strip())
    if not match:
        return None
    params: list[tuple[str, str | None]] = []
    for part in match.group(4).split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        params.append((key.strip().lower(), val.strip() if eq else None))
    port = int(match.group(3)) if match.group(3) else None
    if port is not None and not 0 < port < 65536:
        return None
    return Via(match.group(1).upper(), match.group(2), port, params)


def host_port(uri_value: str) -> tuple[str, int] | None:
    """(host, port) of the SIP URI in a Route/Record-Route value (port 5060 if none)."""
    match = _URI_HOST.search(uri_value)
    if not match:
        return None
    return match.group(1).strip("[]").lower(), int(match.group(2) or 5060)


def derive_branch(secret: bytes, msg: SipMessage) -> str:
    """Our Via branch for `msg`, from its top Via: equal for an INVITE, its CANCEL and
    the ACK of a non-2xx answer (RFC 3261 16.11), and unguessable from outside."""
    top = msg.values("via")[0]
    via = parse_via(top)
    branch = via.param("branch") if via else None
    if via is not None and branch and branch.startswith("z9hG4bK"):
        key = f"{branch}|{via.host}|{via.port}"
    else:  # RFC 2543 peers: no usable branch
        cseq = (msg.get("cseq") or "").split()[:1]
        key = f"{top}|{msg.call_id}|{cseq}"
    digest = hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:20]
    return BRANCH_PREFIX + digest


def mark_received(via_value: str, ip: str, port: int) -> str:
    """The caller's Via with RFC 3261 `received` and RFC 3581 `rport` filled in."""
    via = parse_via(via_value)
    if via is None:
        return via_value
    rport = via.param("rport")
    if rport is not None:
        via.set("rport", str(port))
    if rport is not None or via.host.strip("[]").lower() != ip.lower():
        via.set("received", ip)
    return str(via)


def response_to(
    request: SipMessage, code: int, reason: str, extra: tuple[tuple[str, str], ...] = ()
) -> SipMessage:
    """A response the front sends itself (no body)."""
    headers: list[tuple[str, str]] = [("via", v) for v in request.values("via")]
    to = request.get("to") or ""
    if code > 100 and not request.to_tag:
        to += f";tag=kf{secrets.token_hex(6)}"
    headers += [
        ("from", request.get("from") or ""),
        ("to", to),
        ("call-id", request.call_id),
        ("cseq", request.get("cseq") or ""),
        ("user-agent", AGENT),
        *extra,
    ]
    return SipMessage(f"SIP/2.0 {code} {reason}", headers)


def strip_source(msg: SipMessage) -> None:
    """Removes every `X-Kreis-Source` header (only the front may set one)."""
    msg.remove(SOURCE_HEADER.lower())


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
