"""The SIP front's message handling, and the front itself between UDP/TCP sockets.

The parsing and rewriting functions are checked on their own (Via, Record-Route,
Route, branch derivation, malformed input, `X-Kreis-Source`). Then a real `SipFront`
runs on loopback between a caller socket and a backend socket that stand in for a phone
and a pjsip backend, so every rewrite is seen on the wire, in both directions, over UDP
and TCP. The new configuration keys are checked here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sipgw.config import backend_role, parse_sip, rtp_stride
from sipgw.errors import ConfigError
from sipgw.front import MAX_MESSAGE, SipFront
from sipgw.phone import trusted_source
from sipgw.sipmessage import (
    BRANCH_PREFIX,
    SipMessage,
    SipParseError,
    derive_branch,
    host_port,
    mark_received,
    parse,
    parse_via,
    strip_source,
)
from tests.sipgw.phones import free_sip_port

pytestmark = [pytest.mark.sip, pytest.mark.timeout(30)]

SECRET = b"k" * 32


def invite(
    port: int = 5070,
    branch: str = "z9hG4bK-abc",
    call_id: str = "call-1@phone",
    extra: str = "",
    method: str = "INVITE",
    to_tag: str = "",
    transport: str = "UDP",
    mf: str = "70",
    target: str = "127.0.0.1:5060",
) -> bytes:
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    body += "m=audio 4000 RTP/AVP 0\r\n"
    if method != "INVITE":
        body = ""
    to = f"<sip:kreis@{target}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{method} sip:kreis@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch};rport\r\n"
        f"Max-Forwards: {mf}\r\n"
        f'From: "Anna" <sip:0301234547@127.0.0.1:{port}>;tag=from-1\r\n'
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:0301234547@127.0.0.1:{port}>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def answer(request: SipMessage, code: int = 200, reason: str = "OK", tag: str = "w1") -> bytes:
    """A backend's (or phone's) response: Vias, Record-Route, From, To, Call-ID, CSeq."""
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in request.values("via")]
    lines += [f"Record-Route: {v}" for v in request.values("record-route")]
    to = request.get("to") or ""
    if "tag=" not in to:
        to += f";tag={tag}"
    lines += [
        f"From: {request.get('from')}",
        f"To: {to}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.get('cseq')}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ------------------------------------------------------------------ parsing


def test_parse_splits_lists_unfolds_and_knows_compact_names() -> None:
    raw = (
        b"INVITE sip:kreis@127.0.0.1 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK-2\r\n"
        b"Route: <sip:a;lr>,<sip:b;lr>\r\n"
        b'f: "Doe, Jane" <sip:1@x>;tag=1\r\n'
        b"t: <sip:kreis@127.0.0.1>\r\n"
        b"i: abc\r\n"
        b"CSeq: 7\r\n INVITE\r\n"
        b"l: 4\r\n\r\nbodyEXTRA"
    )
    msg = parse(raw)
    assert msg.method == "INVITE" and msg.is_request
    assert len(msg.values("via")) == 2 and msg.values("via")[1].startswith("SIP/2.0/TCP")
    assert msg.values("route") == ["<sip:a;lr>", "<sip:b;lr>"]
    assert msg.get("from") == '"Doe, Jane" <sip:1@x>;tag=1'  # the comma in quotes stays
    assert msg.get("cseq") == "7 INVITE" and msg.cseq_method == "INVITE"
    assert msg.body == b"body"
    assert msg.problem() is None
    again = parse(msg.encode())
    assert again.headers == msg.headers and again.body == b"body"
    assert b"Content-Length: 4\r\n" in msg.encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n",  # no end of headers
        b"HELLO\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nBad Header\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia: \xff\xfe\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\nshort",
        b"INVITE sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n",
    ],
)
def test_parse_rejects_malformed_input(raw: bytes) -> None:
    with pytest.raises(SipParseError):
        parse(raw)


def test_problem_names_what_is_wrong() -> None:
    assert parse(invite()).problem() is None
    assert "CSeq" in (parse(invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE")).problem() or "")
    assert "CSeq" in (parse(invite().replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")).problem() or "")
    assert "call-id" in (parse(invite().replace(b"Call-ID", b"X-Call")).problem() or "")
    assert "Max-Forwards" in (parse(invite(mf="lots")).problem() or "")
    assert "Via" in (parse(invite().replace(b"SIP/2.0/UDP", b"HTTP/1.1")).problem() or "")


def test_via_received_and_rport_as_a_proxy_adds_them() -> None:
    via = "SIP/2.0/UDP 192.168.1.9:5060;branch=z9hG4bK-1;rport"
    marked = parse_via(mark_received(via, "203.0.113.7", 40001))
    assert marked is not None
    assert marked.param("received") == "203.0.113.7" and marked.param("rport") == "40001"
    # Without rport: received only when the address differs; a forged one is replaced.
    same = "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK-1"
    assert mark_received(same, "203.0.113.7", 5060) == same
    forged = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;received=1.2.3.4"
    assert parse_via(mark_received(forged, "203.0.113.7", 5060)).param("received") == (  # type: ignore[union-attr]
        "203.0.113.7"
    )
    v6 = parse_via("SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bK-x")
    assert v6 is not None and v6.host == "[2001:db8::1]" and v6.port == 5061


def test_branch_is_derived_so_cancel_and_ack_reach_the_same_transaction() -> None:
    inv = parse(invite(branch="z9hG4bK-one"))
    cancel = parse(invite(branch="z9hG4bK-one", method="CANCEL"))
    ack = parse(invite(branch="z9hG4bK-one", method="ACK", to_tag="w1"))
    other = parse(invite(branch="z9hG4bK-two"))
    branch = derive_branch(SECRET, inv)
    assert branch.startswith(BRANCH_PREFIX) and branch.startswith("z9hG4bK")
    assert derive_branch(SECRET, cancel) == branch == derive_branch(SECRET, ack)
    assert derive_branch(SECRET, other) != branch
    assert derive_branch(b"x" * 32, inv) != branch  # not guessable without the secret
    assert "one" not in branch
    # RFC 2543 peers without a cookie still get a stable branch per transaction.
    old = parse(invite(branch="1234"))
    assert derive_branch(SECRET, old) == derive_branch(SECRET, parse(invite(branch="1234")))


def test_route_values_and_source_header() -> None:
    assert host_port("<sip:127.0.0.1:5070;lr>") == ("127.0.0.1", 5070)
    assert host_port("<sip:proxy.example.net;transport=tcp;lr>") == ("proxy.example.net", 5060)
    assert host_port("<sip:[2001:db8::1]:5080;lr>") == ("2001:db8::1", 5080)
    assert host_port("<mailto:x>") is None
    msg = parse(invite(extra="X-Kreis-Source: 10.0.0.1\r\nx-kreis-source: 10.0.0.2\r\n"))
    strip_source(msg)
    assert b"kreis-source" not in msg.encode().lower()


def test_backend_believes_the_source_header_only_from_the_front() -> None:
    msg = "INVITE sip:x SIP/2.0\r\nX-Kreis-Source: 198.51.100.4\r\n\r\nX-Kreis-Source: 1.1.1.1"
    assert trusted_source("127.0.0.1", msg, behind_front=True) == "198.51.100.4"
    assert trusted_source("127.0.0.1", msg, behind_front=False) == "127.0.0.1"
    assert trusted_source("10.0.0.5", msg, behind_front=True) == "10.0.0.5"
    two = msg.replace("\r\n\r\n", "\r\nX-Kreis-Source: 10.0.0.9\r\n\r\n")
    assert trusted_source("127.0.0.1", two, behind_front=True) == ""
    assert trusted_source("127.0.0.1", "INVITE x SIP/2.0\r\n\r\n", behind_front=True) == ""
    bad = "INVITE x SIP/2.0\r\nX-Kreis-Source: not-an-ip\r\n\r\n"
    assert trusted_source("127.0.0.1", bad, behind_front=True) == ""


# ------------------------------------------------------------------ config, lockout


def test_config_processes_and_backend_ranges() -> None:
    sip = parse_sip({"processes": 3, "max_calls": 4, "rtp_port": 30000})
    assert sip.processes == 3 and sip.worker_base_port == 0
    roles = [backend_role(sip, i, 6000 + i) for i in range(3)]
    assert [r.rtp_port for r in roles] == [30000, 30024, 30048] and rtp_stride(sip) == 24
    assert parse_sip({}).processes == 1
    for bad, key in (
        ({"processes": 0}, "processes"),
        ({"processes": True}, "processes"),
        ({"processes": 2, "registrar": "sip:x"}, "registrar"),
        ({"processes": 2, "tls_cert": "/c", "tls_key": "/k"}, "tls_cert"),
        ({"worker_base_port": 70000}, "worker_base_port"),
        ({"processes": 32, "rtp_port": 65000}, "rtp_port"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_sip(bad)


# ------------------------------------------------------------------ the front on the wire


class Peer:
    """A UDP (or TCP) socket standing in for a phone or a backend."""

    def __init__(self, tcp_to: int | None = None) -> None:
        if tcp_to is None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(("127.0.0.1", tcp_to))
        self.sock.setblocking(False)
        self.tcp = tcp_to is not None
        self.port = int(self.sock.getsockname()[1])
        self._buffer = b""

    def send(self, data: bytes, port: int) -> None:
        if self.tcp:
            self.sock.sendall(data)
        else:
            self.sock.sendto(data, ("127.0.0.1", port))

    async def recv(self, timeout: float = 2.0) -> SipMessage:
        loop = asyncio.get_running_loop()
        if not self.tcp:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
            return parse(data)
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
        msg = parse(self._buffer)
        self._buffer = self._buffer[len(msg.encode()) :]
        return msg

    async def nothing(self, timeout: float = 0.3) -> bool:
        try:
            await self.recv(timeout)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


async def start_front(clock: Callable[[], float] = time.monotonic, **sip: Any) -> SipFront:
    port = free_sip_port()
    front = SipFront(parse_sip({"udp_port": port, "tcp_port": port, **sip}), clock=clock)
    await front.start()
    return front


@contextlib.asynccontextmanager
async def front_on_loopback(
    clock: Callable[[], float] = time.monotonic, **sip: Any
) -> AsyncIterator[tuple[SipFront, Peer, Peer]]:
    """A started front with a UDP backend and a UDP phone; all closed afterwards."""
    front = await start_front(clock, **sip)
    backend, phone = Peer(), Peer()
    try:
        yield front, backend, phone
    finally:
        backend.close()
        phone.close()
        await front.stop()


async def test_a_call_through_the_front_both_directions() -> None:
    async with front_on_loopback(max_calls=2) as (front, backend, phone):
        pub, internal = front.sip.udp_port, front.internal_port
        front.backend_ready(0, backend.port)
        spoof = "X-Kreis-Source: 10.9.9.9\r\n"
        phone.send(invite(port=phone.port, extra=spoof, target=f"127.0.0.1:{pub}"), pub)
        got = await backend.recv()
        vias = got.values("via")
        branch = derive_branch(front.secret, parse(invite(port=phone.port)))
        assert vias[0] == f"SIP/2.0/UDP 127.0.0.1:{internal};branch={branch}"
        assert f"rport={phone.port}" in vias[1]
        assert got.values("record-route") == [
            f"<sip:127.0.0.1:{internal};lr>",
            f"<sip:127.0.0.1:{pub};transport=udp;lr>",
        ]
        assert got.values("x-kreis-source") == ["127.0.0.1"]  # the spoofed one is gone
        assert got.get("max-forwards") == "69"
        assert got.get("from") == f'"Anna" <sip:0301234547@127.0.0.1:{phone.port}>;tag=from-1'
        assert got.body.startswith(b"v=0")
        assert front.live_calls(0) == 1

        # The backend answers; the phone gets it without our Via, with both Record-Routes.
        backend.send(answer(got, 100, "Trying"), internal)
        backend.send(answer(got), internal)
        assert (await phone.recv()).status == 100
        ok = await phone.recv()
        assert ok.status == 200 and len(ok.values("via")) == 1
        assert len(ok.values("record-route")) == 2
        assert front.dialogs[ok.call_id].state == "confirmed"

        # The phone's ACK follows its route set (public first) to the backend, routes popped.
        routes = "".join(f"Route: {r}\r\n" for r in reversed(ok.values("record-route")))
        ack = invite(port=phone.port, method="ACK", to_tag="w1", extra=routes, branch="z9hG4bK-a")
        phone.send(ack, pub)
        got_ack = await backend.recv()
        assert got_ack.method == "ACK" and got_ack.values("route") == []

        # The gateway hangs up: BYE from the backend reaches the phone with our Via on top.
        bye = (
            f"BYE sip:0301234547@127.0.0.1:{phone.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{backend.port};branch=z9hG4bK-w-bye;rport\r\n"
            f"Route: <sip:127.0.0.1:{internal};lr>\r\nRoute: <sip:127.0.0.1:{pub};lr>\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {ok.get('to')}\r\nTo: {ok.get('from')}\r\nCall-ID: {ok.call_id}\r\n"
            "CSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        backend.send(bye, internal)
        got_bye = await phone.recv()
        assert got_bye.method == "BYE" and got_bye.values("route") == []
        top = parse_via(got_bye.values("via")[0])
        assert top is not None and (top.host, top.port) == ("127.0.0.1", pub)
        assert got_bye.get("max-forwards") == "69"
        phone.send(answer(got_bye), pub)
        back = await backend.recv()
        assert back.status == 200 and back.values("via")[0].endswith("z9hG4bK-w-bye;rport")
        assert len(back.values("via")) == 1
        assert front.live_calls(0) == 0

        # A BYE for a dialog the front does not know: 481, and the backend hears nothing.
        phone.send(invite(port=phone.port, method="BYE", to_tag="x", call_id="nope"), pub)
        assert (await phone.recv()).status == 481
        assert await backend.nothing()


async def test_front_answers_busy_scans_and_garbage_itself() -> None:
    async with front_on_loopback(max_calls=1) as (front, backend, phone):
        pub = front.sip.udp_port
        # No backend ready yet: busy.
        phone.send(invite(port=phone.port, call_id="c0"), pub)
        assert (await phone.recv()).status == 486
        front.backend_ready(0, backend.port)
        phone.send(invite(port=phone.port, call_id="c1"), pub)
        first = await backend.recv()
        phone.send(invite(port=phone.port, call_id="c1"), pub)  # a retransmission
        assert (await backend.recv()).call_id == "c1"
        phone.send(invite(port=phone.port, call_id="c2", branch="z9hG4bK-2"), pub)
        busy = await phone.recv()
        assert busy.status == 486 and busy.to_tag
        # CANCEL goes to the same backend transaction (same derived branch).
        phone.send(invite(port=phone.port, call_id="c1", method="CANCEL"), pub)
        cancel = await backend.recv()
        assert cancel.method == "CANCEL" and cancel.values("via")[0] == first.values("via")[0]
        backend.send(answer(first, 487, "Request Terminated"), front.internal_port)
        assert (await phone.recv()).status == 487
        assert front.live_calls(0) == 0

        phone.send(invite(port=phone.port, method="OPTIONS", call_id="o1"), pub)
        options = await phone.recv()
        assert options.status == 200
        agent = options.get("user-agent") or ""
        assert agent == "Kreis dial-in" and not any(ch.isdigit() for ch in agent)
        assert options.get("server") is None

        phone.send(invite(port=phone.port, mf="0", call_id="c3"), pub)
        assert (await phone.recv()).status == 483
        phone.send(
            invite(port=phone.port, call_id="c4").replace(b"CSeq: 1 INVITE", b"CSeq: z"), pub
        )
        assert (await phone.recv()).status == 400
        phone.send(invite(port=phone.port, method="REGISTER", call_id="r1"), pub)
        assert (await phone.recv()).status == 405
        big = invite(port=phone.port, call_id="c5", extra=f"X-Pad: {'a' * MAX_MESSAGE}\r\n")
        phone.send(big, pub)
        assert (await phone.recv()).status == 513
        for junk in (b"\x00\xff" * 50, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n"):
            phone.send(junk, pub)
        assert await phone.nothing() and await backend.nothing()
        phone.send(invite(port=phone.port, method="OPTIONS", call_id="o2"), pub)
        assert (await phone.recv()).status == 200  # still serving

        # A backend that dies takes its calls along; the front forgets them.
        phone.send(invite(port=phone.port, call_id="c6", branch="z9hG4bK-6"), pub)
        await backend.recv()
        assert front.live_calls(0) == 1
        front.backend_gone(0)
        assert front.live_calls(0) == 0 and not front.dialogs


async def test_front_refuses_sources_outside_allow_from() -> None:
    async with front_on_loopback(allow_from=["192.0.2.0/24"]) as (front, backend, phone):
        front.backend_ready(0, backend.port)
        phone.send(invite(port=phone.port), front.sip.udp_port)
        assert (await phone.recv()).status == 403
        assert await backend.nothing()
        phone.send(invite(port=phone.port, method="OPTIONS"), front.sip.udp_port)
        assert (await phone.recv()).status == 200


async def test_calls_over_tcp_and_spread_over_backends() -> None:
    front = await start_front(max_calls=2)
    pub, internal = front.sip.tcp_port, front.internal_port
    backends = [Peer(), Peer()]
    for i, w in enumerate(backends):
        front.backend_ready(i, w.port)
    phone = Peer(tcp_to=pub)
    try:
        landed = []
        for n in range(4):
            phone.send(invite(port=phone.port, call_id=f"t{n}", transport="TCP"), pub)
            await asyncio.sleep(0.05)
            for i, w in enumerate(backends):
                with_msg = not await w.nothing(0.2)
                if with_msg:
                    landed.append(i)
        assert sorted(landed) == [0, 0, 1, 1] and landed[:2] == [0, 1]
        # Both backends full: the fifth call is busy, answered over the same connection.
        phone.send(invite(port=phone.port, call_id="t4", transport="TCP"), pub)
        assert (await phone.recv()).status == 486

        front.backend_gone(1)
        front.backend_ready(1, backends[1].port)
        phone.send(invite(port=phone.port, call_id="t5", transport="TCP"), pub)
        got = await backends[1].recv()
        assert f"<sip:127.0.0.1:{pub};transport=tcp;lr>" in got.values("record-route")
        backends[1].send(answer(got), internal)
        ok = await phone.recv()
        assert ok.status == 200 and ok.call_id == "t5" and len(ok.values("via")) == 1
    finally:
        for w in backends:
            w.close()
        phone.close()
        await front.stop()


async def test_dialog_table_expires_idle_entries() -> None:
    now = [0.0]
    async with front_on_loopback(clock=lambda: now[0], tcp_port=0) as (front, backend, phone):
        port = front.sip.udp_port
        front.backend_ready(0, backend.port)
        phone.send(invite(port=phone.port, call_id="idle"), port)
        await backend.recv()
        assert "idle" in front.dialogs
        now[0] = 100.0  # an INVITE never answered for 100 s
        phone.send(invite(port=phone.port, method="OPTIONS", call_id="o"), port)
        await phone.recv()
        assert "idle" not in front.dialogs
