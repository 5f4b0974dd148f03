"""The SIP front: one public SIP address for several gateway backend processes.

pjsua2-python holds at most four calls per process, so with `[sip] processes > 1` the
supervisor runs this small proxy on the public UDP and TCP ports and spreads calls
over backends listening on 127.0.0.1 (UDP). Only SIP passes through here; each backend
puts the public media address into its SDP, so RTP flows straight between the caller
and the backend.

The proxy is transaction-stateless but dialog-aware. An initial INVITE is checked
against `allow_from` (403) and sent to the backend with the fewest live calls that has
a free slot (none: 486 Busy Here, as a full lone gateway answers). The Call-ID then
maps to that backend and to the caller's flow (transport, address, TCP connection), so
everything else in the dialog follows by Call-ID. Forwarded requests get our Via
(branch derived from the caller's, so CANCEL and non-2xx ACK hit the same backend
transaction), Max-Forwards minus one, RFC 3581 `received`/`rport` on the caller's Via,
a double Record-Route on dialog-creating INVITEs (public side for the caller, internal
side for the backend), and `X-Kreis-Source: <caller address>`, the only source address
a backend believes (any such header from outside is removed). Responses pop our Via.

The Call-ID table is bounded; entries go after the dialog ended (plus a linger for
retransmissions) or after an idle time. Malformed messages are dropped, or answered
400 when they carry enough to answer. Nothing here logs an address or a number.
Parsing and rewriting single messages is `sipgw.sipmessage`; this module is the
sockets, the Call-ID table and the routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sipgw.config import FRONT_ADDRESS, SipConfig
from sipgw.sipmessage import (
    BRANCH_PREFIX,
    SOURCE_HEADER,
    SipMessage,
    SipParseError,
    bracket,
    derive_branch,
    host_port,
    mark_received,
    parse,
    parse_via,
    response_to,
    strip_source,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 16384
"""Longest SIP message accepted (bytes); a call's INVITE with SDP is about 1 KiB."""
MAX_DIALOGS = 4096
MAX_TCP = 256
EARLY_IDLE = 64.0
"""Seconds an unanswered INVITE's Call-ID lives without traffic (64 * T1)."""
CONFIRMED_IDLE = 12 * 3600.0
"""Seconds a confirmed call lives without any SIP message (no session timers here)."""
LINGER = 32.0
"""Seconds a Call-ID stays after its dialog ended, for retransmissions."""
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"


def next_state(state: str, method: str, status: int) -> str:
    """A dialog's state after a backend's response to `method`."""
    if method == "INVITE" and 200 <= status < 300 and state == "early":
        return "confirmed"
    if method == "INVITE" and status >= 300 and state == "early":
        return "ended"
    if method == "BYE" and status >= 200:
        return "ended"
    return state


@dataclass
class Flow:
    """Where a caller's messages came from, and so where ours go back."""

    transport: str
    """`UDP` or `TCP`."""
    address: tuple[str, int]
    conn: _TcpConnection | None = None


@dataclass
class Dialog:
    """What the front remembers of one Call-ID."""

    backend: int
    flow: Flow
    state: str = "early"
    """`early` (INVITE sent on), `confirmed` (2xx seen), `ended` (lingers briefly)."""
    touched: float = 0.0


@dataclass
class _Backend:
    index: int
    address: tuple[str, int]
    ready: bool = False


class _PublicUdp(asyncio.DatagramProtocol):
    def __init__(self, front: SipFront) -> None:
        self.front = front

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if data.strip(b"\r\n"):
            self.front.from_caller(data, Flow("UDP", (str(addr[0]), int(addr[1]))))


class _InternalUdp(asyncio.DatagramProtocol):
    def __init__(self, front: SipFront) -> None:
        self.front = front

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.front.from_backend(data, (str(addr[0]), int(addr[1])))


class _TcpConnection(asyncio.Protocol):
    """One caller's TCP connection: frames messages by Content-Length."""

    def __init__(self, front: SipFront) -> None:
        self.front = front
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        if len(self.front.tcp) >= MAX_TCP:
            transport.close()
            return
        self.front.tcp[self.peer] = self

    def connection_lost(self, exc: Exception | None) -> None:
        if self.front.tcp.get(self.peer) is self:
            del self.front.tcp[self.peer]
        self.transport = None

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            while self.buffer[:2] == b"\r\n":
                del self.buffer[:2]  # keep-alive
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_MESSAGE and self.transport is not None:
                    self.transport.close()  # no end of headers in sight
                return
            match = re.search(
                rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d{1,6})[ \t]*\r?$",
                bytes(self.buffer[:end]),
            )
            length = int(match.group(1)) if match else 0
            total = end + 4 + length
            if total > MAX_MESSAGE:
                if self.transport is not None:
                    self.transport.close()  # over-long: not worth reading
                return
            if len(self.buffer) < total:
                return
            message = bytes(self.buffer[:total])
            del self.buffer[:total]
            self.front.from_caller(message, Flow("TCP", self.peer, self))


class SipFront:
    """The public SIP address of a multi-process gateway (see the module docstring)."""

    def __init__(
        self,
        sip: SipConfig,
        internal_port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sip = sip
        self.host = bracket(sip.listen_address)
        self.internal_port = internal_port
        self.clock = clock
        self.secret = secrets.token_bytes(32)
        self.backends: dict[int, _Backend] = {}
        self.dialogs: dict[str, Dialog] = {}
        self.tcp: dict[tuple[str, int], _TcpConnection] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._internal: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._expired_at = 0.0

    # ------------------------------------------------------------ control

    async def start(self) -> None:
        """Binds the public UDP/TCP ports and the internal UDP socket (OSError if taken)."""
        loop = asyncio.get_running_loop()
        internal, _ = await loop.create_datagram_endpoint(
            lambda: _InternalUdp(self), local_addr=(FRONT_ADDRESS, self.internal_port)
        )
        self._internal = internal
        self.internal_port = int(internal.get_extra_info("sockname")[1])
        if self.sip.udp_port:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _PublicUdp(self), local_addr=(self.sip.listen_address, self.sip.udp_port)
            )
            self._udp = udp
        if self.sip.tcp_port:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self), self.sip.listen_address, self.sip.tcp_port
            )

    async def stop(self) -> None:
        for transport in (self._udp, self._internal):
            if transport is not None:
                transport.close()
        for conn in list(self.tcp.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def backend_ready(self, index: int, port: int) -> None:
        """Backend `index` listens on `FRONT_ADDRESS:port` and may take calls."""
        self.backends[index] = _Backend(index, (FRONT_ADDRESS, port), ready=True)

    def backend_gone(self, index: int) -> None:
        """Backend `index` died: its calls are lost, the others go on."""
        backend = self.backends.get(index)
        if backend is not None:
            backend.ready = False
        calls = self.live_calls(index)
        for cid in [cid for cid, d in self.dialogs.items() if d.backend == index]:
            del self.dialogs[cid]
        log.warning("backend %d is gone with %d calls", index, calls)

    def live_calls(self, index: int) -> int:
        return sum(1 for d in self.dialogs.values() if d.backend == index and d.state != "ended")

    # ------------------------------------------------------------ sending

    def _to_caller(self, msg: SipMessage, flow: Flow) -> None:
        data = msg.encode()
        if flow.transport == "TCP":
            conn = flow.conn if flow.conn is not None and flow.conn.open else None
            conn = conn or self.tcp.get(flow.address)
            if conn is not None:
                conn.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, flow.address)

    def _to_backend(self, msg: SipMessage, index: int) -> None:
        backend = self.backends.get(index)
        if backend is not None and self._internal is not None:
            self._internal.sendto(msg.encode(), backend.address)

    def _answer(self, request: SipMessage, flow: Flow, code: int, reason: str) -> None:
        if request.method == "ACK":
            return
        extra: tuple[tuple[str, str], ...] = ()
        if code in (200, 405):
            extra = (("allow", ALLOW), ("accept", "application/sdp"))
        self._to_caller(response_to(request, code, reason, extra), flow)

    def _public_port(self, transport: str) -> int:
        return self.sip.tcp_port if transport == "TCP" else self.sip.udp_port

    def _ours(self, value: str) -> bool:
        """True if a Route/Record-Route value names this front."""
        where = host_port(value)
        if where is None:
            return False
        host = self.sip.listen_address.strip("[]").lower()
        mine = {(FRONT_ADDRESS, self.internal_port)}
        mine |= {(host, p) for p in (self.sip.udp_port, self.sip.tcp_port) if p}
        return where in mine

    def _pop_routes(self, msg: SipMessage) -> None:
        while (top := msg.get("route")) is not None and self._ours(top):
            msg.pop("route")

    def _pop_own_via(self, msg: SipMessage) -> bool:
        via = parse_via(msg.values("via")[0])
        if via is None or not (via.param("branch") or "").startswith(BRANCH_PREFIX):
            return False
        msg.pop("via")
        return bool(msg.values("via"))

    def _forwardable(self, msg: SipMessage, answer: Callable[[int, str], None]) -> bool:
        """Max-Forwards minus one (483 at zero)."""
        raw = msg.get("max-forwards")
        hops = int(raw) if raw is not None else 70
        if hops <= 0:
            answer(483, "Too Many Hops")
            return False
        msg.remove("max-forwards")
        msg.headers.append(("max-forwards", str(min(hops, 70) - 1)))
        return True

    # ------------------------------------------------------------ from callers

    def from_caller(self, data: bytes, flow: Flow) -> None:
        """A message on the public UDP port or a caller's TCP connection."""
        try:
            self._from_caller(data, flow)
        except Exception:
            log.exception("the SIP front could not handle a message (dropped)")

    def _from_caller(self, data: bytes, flow: Flow) -> None:
        try:
            msg = parse(data)
        except SipParseError as exc:
            log.debug("dropped an unparseable message: %s", exc)
            return
        if not msg.values("via") or any(not msg.values(h) for h in ("from", "to", "call-id")):
            log.debug("dropped a message without the headers to answer it")
            return
        self._expire()
        if not msg.is_request:
            self._response_from_caller(msg)
            return
        problem = msg.problem()
        if len(data) > MAX_MESSAGE:
            self._answer(msg, flow, 513, "Message Too Large")
            return
        if problem is not None:
            log.debug("answered a malformed request with 400: %s", problem)
            self._answer(msg, flow, 400, "Bad Request")
            return
        msg.replace_top("via", mark_received(msg.values("via")[0], *flow.address))
        self._request_from_caller(msg, flow)

    def _request_from_caller(self, msg: SipMessage, flow: Flow) -> None:
        method, dialog = msg.method, self.dialogs.get(msg.call_id)

        def answer(code: int, reason: str) -> None:
            self._answer(msg, flow, code, reason)

        if method == "OPTIONS" and dialog is None:
            answer(200, "OK")
            return
        if not self.sip.allows(flow.address[0]):
            if method == "INVITE":
                log.warning("rejected a call from an address outside allow_from (403)")
            answer(403, "Forbidden")
            return
        if not self._forwardable(msg, answer):
            return
        if dialog is None:
            if method != "INVITE" or msg.to_tag:
                if method not in ("INVITE", "ACK", "BYE", "CANCEL", "INFO", "UPDATE", "PRACK"):
                    answer(405, "Method Not Allowed")
                else:
                    answer(481, "Call/Transaction Does Not Exist")
                return
            index = self._pick_backend()
            if index is None:
                log.warning("rejected a call: all %d call slots are busy (486)", self.capacity)
                answer(486, "Busy Here")
                return
            if len(self.dialogs) >= MAX_DIALOGS:
                answer(503, "Service Unavailable")
                return
            dialog = Dialog(index, flow, touched=self.clock())
            self.dialogs[msg.call_id] = dialog
            log.info(
                "a call goes to backend %d (%d live there, %d in all)",
                index,
                self.live_calls(index),
                sum(self.live_calls(i) for i in self.backends),
            )
        dialog.touched = self.clock()
        dialog.flow = flow
        if method == "BYE" and dialog.state == "confirmed":
            dialog.state = "ending"
        self._pop_routes(msg)
        strip_source(msg)
        msg.headers.append((SOURCE_HEADER.lower(), flow.address[0]))
        if method == "INVITE" and not msg.to_tag:
            public = f"<sip:{self.host}:{self._public_port(flow.transport)};"
            public += f"transport={flow.transport.lower()};lr>"
            msg.push("record-route", public)
            msg.push("record-route", f"<sip:{FRONT_ADDRESS}:{self.internal_port};lr>")
        branch = derive_branch(self.secret, msg)
        msg.push("via", f"SIP/2.0/UDP {FRONT_ADDRESS}:{self.internal_port};branch={branch}")
        self._to_backend(msg, dialog.backend)

    @property
    def capacity(self) -> int:
        return self.sip.max_calls * len(self.backends)

    def _pick_backend(self) -> int | None:
        best: tuple[int, int] | None = None
        for index, backend in sorted(self.backends.items()):
            if not backend.ready:
                continue
            live = self.live_calls(index)
            if live < self.sip.max_calls and (best is None or live < best[0]):
                best = (live, index)
        return best[1] if best else None

    def _response_from_caller(self, msg: SipMessage) -> None:
        # The answer to a request a backend sent (BYE, INFO): back to that backend.
        dialog = self.dialogs.get(msg.call_id)
        if dialog is None or not self._pop_own_via(msg):
            return
        strip_source(msg)
        dialog.touched = self.clock()
        if msg.cseq_method == "BYE" and msg.status >= 200:
            dialog.state = "ended"
        self._to_backend(msg, dialog.backend)

    # ------------------------------------------------------------ from backends

    def from_backend(self, data: bytes, addr: tuple[str, int]) -> None:
        """A message on the internal socket."""
        try:
            self._from_backend(data, addr)
        except Exception:
            log.exception("the SIP front could not handle a backend's message (dropped)")

    def _from_backend(self, data: bytes, addr: tuple[str, int]) -> None:
        index = next((w.index for w in self.backends.values() if w.address == addr), None)
        if index is None:
            return  # not one of ours
        try:
            msg = parse(data)
        except SipParseError:
            log.warning("a backend sent an unparseable message (dropped)")
            return
        dialog = self.dialogs.get(msg.call_id)
        if dialog is None or dialog.backend != index or not msg.values("via"):
            return
        dialog.touched = self.clock()
        if msg.is_request:
            self._request_from_backend(msg, dialog)
            return
        if not self._pop_own_via(msg):
            return
        dialog.state = next_state(dialog.state, msg.cseq_method, msg.status)
        via = parse_via(msg.values("via")[0])
        flow = dialog.flow
        if via is not None and via.transport == "UDP" and flow.transport == "UDP":
            rport = via.param("rport")
            port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
            flow = Flow("UDP", ((via.param("received") or via.host).strip("[]"), port))
        self._to_caller(msg, flow)

    def _request_from_backend(self, msg: SipMessage, dialog: Dialog) -> None:
        if msg.problem() is not None or not self._forwardable(msg, lambda c, r: None):
            return
        self._pop_routes(msg)
        if msg.method == "BYE":
            dialog.state = "ending"
        flow = dialog.flow
        via = f"SIP/2.0/{flow.transport} {self.host}:{self._public_port(flow.transport)}"
        msg.push("via", f"{via};rport;branch={derive_branch(self.secret, msg)}")
        self._to_caller(msg, flow)

    # ------------------------------------------------------------ the table

    def _expire(self) -> None:
        now = self.clock()
        if now - self._expired_at < 1.0 and len(self.dialogs) < MAX_DIALOGS:
            return
        self._expired_at = now
        limits = {"early": EARLY_IDLE, "ended": LINGER, "ending": LINGER}
        stale = [
            cid
            for cid, d in self.dialogs.items()
            if now - d.touched > limits.get(d.state, CONFIRMED_IDLE)
        ]
        for cid in stale:
            del self.dialogs[cid]
        if len(self.dialogs) >= MAX_DIALOGS:
            # Still full: ended calls go first, oldest first.
            ended = sorted(
                (d.touched, cid) for cid, d in self.dialogs.items() if d.state == "ended"
            )
            for _, cid in ended[: len(self.dialogs) - MAX_DIALOGS + 64]:
                del self.dialogs[cid]
