"""Calls through Debian's Kamailio in front of two gateway processes, in two rooms.

Everything is real: the `kreis serve` process, `kreis dial-in` with `processes = 2`
and `max_calls = 4` (8 call slots; one pjsua2 process holds 4) as its own process
tree with Kamailio as its SIP edge, baresip phones dialling with their rooms' PINs
(RFC 4733), SIPp callers filling slots, a leader per room, and an aiortc participant
per room recording what the room hears.

Which process serves a call is measured, not assumed: each backend has its own RTP
range (baresip logs the port the call's RTP arrives from) and logs its calls under
its own name. Kamailio's view (gateway active or not, calls per gateway) comes from
Kamailio itself over its control socket.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sipgw.config import parse_sip
from sipgw.kamailio import PROBE_INTERVAL, SOURCE_HEADER, render_config
from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.edge import (
    MAX_CALLS,
    EdgeDialIn,
    alive,
    backend_of_phone,
    sipp_in_background,
)
from tests.sipgw.participant import RoomParticipant, leader_session, wait_entrants
from tests.sipgw.phones import BaresipPhone, free_sip_port, hears, run_sipp

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

SLUG_A, SLUG_B = "kamailio-a", "kamailio-b"
TONES = [440.0, 560.0, 680.0, 800.0, 920.0, 1040.0]
"""What each phone sends; phones 0-2 call room A, phones 3-5 room B."""
GUEST_A, GUEST_B = 1800.0, 2000.0


def needs(*tools: str) -> None:
    for tool in tools:
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")


async def until(check: Any, timeout: float, what: str) -> float:
    """Seconds until `check()` is true (polled every 50 ms); fails after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what} not within {timeout} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_eight_calls_a_killed_gateway_and_the_ninth_call(
    kreis_server: Any, tmp_path: Path
) -> None:
    needs("baresip", "sipp", "kamailio")
    # Up to 8 SIPp callers and the ninth wait on threads at once (the default pool
    # has 6 on two cores: the ninth call would wait for a filler to end).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(24))
    url = kreis_server.url
    leader_a, pin_a = await leader_session(url, kreis_server.group, kreis_server.password, SLUG_A)
    leader_b, pin_b = await leader_session(url, kreis_server.group, kreis_server.password, SLUG_B)
    guest_a = RoomParticipant(url, SLUG_A, "Gast A", GUEST_A)
    guest_b = RoomParticipant(url, SLUG_B, "Gast B", GUEST_B)
    dial_in = EdgeDialIn(tmp_path / "dial-in", kreis_server.ws_url)
    phones: list[BaresipPhone] = []
    fillers: list[asyncio.Task[Any]] = []
    hold = scenarios.write(tmp_path / "hold.xml", scenarios.info_pin("", hold_ms=10000))
    busy_xml = scenarios.write(tmp_path / "busy.xml", scenarios.rejected(486))
    try:
        await guest_a.join(leader_a)
        await guest_b.join(leader_b)
        await dial_in.ready()
        first_pids = dial_in.backend_pids()

        # Six phones dial at once; Kamailio spreads them by call load.
        for i, hz in enumerate(TONES):
            phone = BaresipPhone(tmp_path / f"phone-{i}", f"03011111{10 + i}", hz)
            phones.append(await asyncio.to_thread(phone.start))
        for phone in phones:
            phone.dial(dial_in.uri)
        established = await asyncio.gather(
            *(asyncio.to_thread(p.wait_for, "Call established", 15) for p in phones)
        )
        assert all(established), established
        backends = [await backend_of_phone(dial_in, p) for p in phones]
        print(f"backends per phone: {backends}")
        assert sorted(backends) == [0, 0, 0, 1, 1, 1], backends

        await asyncio.sleep(1.0)
        await asyncio.gather(
            *(
                asyncio.to_thread(p.digits, (pin_a if i < 3 else pin_b) + "#", 0.22)
                for i, p in enumerate(phones)
            )
        )
        lobby_a, lobby_b = await asyncio.gather(
            wait_entrants(leader_a, SLUG_A, "Telefon", 3),
            wait_entrants(leader_b, SLUG_B, "Telefon", 3),
        )
        label = {i: f"Telefon …{10 + i}" for i in range(6)}
        assert sorted(str(e["name"]) for e in lobby_a) == [label[i] for i in range(3)]
        assert sorted(str(e["name"]) for e in lobby_b) == [label[i] for i in range(3, 6)]

        # One caller per room is admitted. Room B's caller's backend survives (S), the
        # other one (V) will hang and be killed; room A's caller is on V if any is.
        in_b = 3
        S = backends[in_b]
        V = 1 - S
        in_a = next((i for i in range(3) if backends[i] == V), 0)
        entrant_a = next(e for e in lobby_a if e["name"] == label[in_a])
        entrant_b = next(e for e in lobby_b if e["name"] == label[in_b])
        await leader_a.send({"type": "admit", "room": SLUG_A, "id": entrant_a["id"]})
        await leader_b.send({"type": "admit", "room": SLUG_B, "id": entrant_b["id"]})
        admitted = time.monotonic()

        # Two SIPp callers take the last two slots; the ninth INVITE gets 486 from the edge.
        for n in range(2):
            fillers.append(sipp_in_background(hold, dial_in.target, tmp_path / f"fill-{n}", 30))
        await until(lambda: len(dial_in.ringing()) == 8, 10, "8 calls")
        loads = dial_in.dispatcher()
        print(f"8 calls, Kamailio's view: {loads}")
        assert [loads[0]["load"], loads[1]["load"]] == [MAX_CALLS, MAX_CALLS]
        busy = await asyncio.to_thread(run_sipp, busy_xml, dial_in.target, tmp_path, 15)
        assert busy.returncode == 0, busy.stdout.decode()[-1500:]
        assert len(dial_in.ringing()) == 8, "the ninth call reached a gateway"
        await asyncio.sleep(max(0.0, admitted + 7 - time.monotonic()))
        room_a = guest_a.heard_since(admitted + 2.0)
        room_b = guest_b.heard_since(admitted + 2.0)
        for task in fillers:
            result = await task
            assert result.returncode == 0, result.stdout.decode()[-1500:]
        fillers.clear()

        # The leader turns a waiting caller away: the gateway's BYE reaches the phone
        # through Kamailio; every other call stays up.
        denied = next(i for i in range(3) if i != in_a)
        entrant = next(e for e in lobby_a if e["name"] == label[denied])
        await leader_a.send({"type": "deny", "room": SLUG_A, "id": entrant["id"]})
        assert await asyncio.to_thread(phones[denied].wait_for, "terminated", 15)
        await dial_in.wait_log("finished: denied", timeout=5)
        others = [i for i in range(6) if i != denied]
        assert not any("terminated" in phones[i].output() for i in others)

        # Backend V hangs (SIGSTOP): nobody but Kamailio's probes can notice. It gets no
        # new call once they mark it dead; backend S takes the next one.
        short = scenarios.write(tmp_path / "short.xml", scenarios.info_pin("", hold_ms=1000))
        pids = dial_in.backend_pids()
        assert pids == first_pids
        before = len(dial_in.ringing())
        os.kill(pids[V], signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            t_probe = await until(lambda: not dial_in.dispatcher()[V]["active"], 10, "dead")
            call = sipp_in_background(short, dial_in.target, tmp_path / "hung", 20)
            await until(lambda: len(dial_in.ringing()) > before, 10, "a call while hung")
            assert dial_in.ringing()[before:] == [S], dial_in.ringing()
            assert (await call).returncode == 0
        finally:
            os.kill(pids[V], signal.SIGCONT)
        print(
            f"backend {V} hung: the probes marked it dead after {t_probe:.2f} s (probe "
            f"interval {PROBE_INTERVAL} s, then 2 s without an answer)"
        )
        # At worst: a probe answered just before the hang, the next one after an
        # interval, unanswered for 2 s (tm's fr_timer), noticed at the next timer tick.
        assert t_probe <= 2 * PROBE_INTERVAL + 2 + 0.5
        await until(lambda: dial_in.dispatcher()[V]["active"], 2 * PROBE_INTERVAL + 3, "back")
        room_b_while_hung = guest_b.heard_since(stopped + 0.5)

        # Backend V is killed outright: the supervisor tells Kamailio at once, a new call
        # goes to backend S, and its calls (room B's caller among them) go on.
        before = len(dial_in.ringing())
        os.kill(pids[V], signal.SIGKILL)
        killed = time.monotonic()
        t_dead = await until(lambda: not dial_in.dispatcher()[V]["active"], 10, "marked dead")
        call = sipp_in_background(short, dial_in.target, tmp_path / "after-kill", 20)
        await until(lambda: len(dial_in.ringing()) > before, 10, "the call after the kill")
        t_new = time.monotonic() - killed
        assert dial_in.ringing()[before:] == [S], dial_in.ringing()
        assert (await call).returncode == 0
        print(
            f"backend {V} killed: out of Kamailio's list after {t_dead:.2f} s, "
            f"a new call rang on backend {S} after {t_new:.2f} s"
        )
        assert t_dead <= PROBE_INTERVAL
        await asyncio.sleep(max(0.0, killed + 4 - time.monotonic()))
        room_b_after_kill = guest_b.heard_since(killed + 0.5)
        assert "terminated" not in phones[in_b].output()

        # The supervisor starts backend V again; its dead calls' load is dropped. Fill
        # every slot again, then a ninth call is busy.
        await dial_in.wait_log(f"backend {V} is ready", 2, timeout=20)
        assert dial_in.backend_pids()[S] == pids[S] and alive(pids[S])
        await until(lambda: dial_in.dispatcher()[V]["active"], 2 * PROBE_INTERVAL + 3, "back")
        loads = dial_in.dispatcher()
        live_on_s = sum(
            1 for i in range(6) if backends[i] == S and "terminated" not in phones[i].output()
        )
        print(f"backend {V} back; Kamailio's view: {loads}")
        assert loads[V]["load"] == 0 and loads[S]["load"] == live_on_s
        free = 2 * MAX_CALLS - loads[S]["load"]
        before = len(dial_in.ringing())
        for n in range(free):
            fillers.append(sipp_in_background(hold, dial_in.target, tmp_path / f"refill-{n}", 30))
        await until(lambda: len(dial_in.ringing()) == before + free, 10, "the refill")
        assert dial_in.ringing()[before:].count(V) == MAX_CALLS, dial_in.ringing()
        full = dial_in.dispatcher()
        busy = await asyncio.to_thread(run_sipp, busy_xml, dial_in.target, tmp_path, 15)
        assert busy.returncode == 0, f"{full} {dial_in.dispatcher()} {dial_in.ringing()}"
        assert len(dial_in.ringing()) == before + free
        for task in fillers:
            result = await task
            assert result.returncode == 0, result.stdout.decode()[-1500:]
        fillers.clear()
    finally:
        for task in fillers:
            task.cancel()
        for phone in phones:
            await asyncio.to_thread(phone.stop)
        await guest_a.close()
        await guest_b.close()
        await leader_a.close()
        await leader_b.close()
        pids = dial_in.backend_pids()
        kamailio = dial_in.kamailio_pid()
        code = dial_in.stop()
    assert code == 0, dial_in.log()[-3000:]
    assert not any(alive(pid) for pid in pids.values()), "a backend outlived the supervisor"
    assert not alive(kamailio), "Kamailio outlived the supervisor"
    assert "Traceback" not in dial_in.log(), dial_in.log()[-3000:]
    # Kamailio's lines and the backends' are masked: no address, no caller's number.
    assert "127.0.0.1" not in dial_in.log() and "0301111" not in dial_in.log()

    hears(room_a, TONES[in_a], TONES[in_b], f"room A, caller {in_a} on backend {backends[in_a]}")
    hears(room_b, TONES[in_b], TONES[in_a], f"room B, caller {in_b} on backend {S}")
    hears(room_b_while_hung, TONES[in_b], TONES[in_a], f"room B while backend {V} hung")
    hears(room_b_after_kill, TONES[in_b], TONES[in_a], f"room B after backend {V} was killed")


# ------------------------------------------------------------------ a phone in Python


class UdpPhone:
    """Just enough of a SIP phone over UDP to hold one dialog through a proxy."""

    def __init__(self, target: tuple[str, int], number: str = "0301234599") -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.number = number
        self.call_id = f"{uuid.uuid4().hex}@phone"
        self.from_tag = uuid.uuid4().hex[:10]
        self.to_tag = ""
        self.routes: list[str] = []
        self.contact = ""
        self.cseq = 1

    def request(
        self,
        method: str,
        cseq: int,
        body: str = "",
        ctype: str = "",
        via_port: int = 0,
        extra: tuple[str, ...] = (),
    ) -> bytes:
        uri = self.contact or f"sip:kreis@{self.target[0]}:{self.target[1]}"
        head = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{via_port or self.port};rport;"
            f"branch=z9hG4bK{uuid.uuid4().hex[:12]}",
            "Max-Forwards: 70",
            f"From: <sip:{self.number}@127.0.0.1>;tag={self.from_tag}",
            f"To: <sip:kreis@{self.target[0]}>" + (f";tag={self.to_tag}" if self.to_tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.number}@127.0.0.1:{via_port or self.port}>",
            *(f"Route: {r}" for r in self.routes),
            *extra,
        ]
        if ctype:
            head.append(f"Content-Type: {ctype}")
        head.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(head) + "\r\n\r\n" + body).encode()

    def recv(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            return data.decode(errors="replace")
        return None

    def invite(self, timeout: float = 10) -> None:
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port + 2} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        )
        # A forged source header: Kamailio must drop it and set its own (a backend
        # refuses an INVITE with two, and 192.0.2.9 is outside allow_from).
        forged = (f"{SOURCE_HEADER}: 192.0.2.9",)
        invite = self.request("INVITE", 1, sdp, "application/sdp", extra=forged)
        self.sock.sendto(invite, self.target)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.recv(1)
            if msg is None or not msg.startswith("SIP/2.0 200"):
                continue
            lines = msg.split("\r\n")
            to = next(x for x in lines if x.lower().startswith("to:"))
            self.to_tag = to.split("tag=", 1)[1].split(";")[0]
            rr = [x.split(":", 1)[1].strip() for x in lines if x.lower().startswith("record-route")]
            self.routes = list(reversed([r.strip() for x in rr for r in x.split(",")]))
            contact = next(x for x in lines if x.lower().startswith(("contact:", "m:")))
            self.contact = contact.split("<", 1)[1].split(">", 1)[0]
            self.sock.sendto(self.request("ACK", 1), self.target)
            return
        raise AssertionError("the call was not answered")

    def answer(self, request: str) -> None:
        """200 OK to an in-dialog request (its Vias and tags echoed)."""
        lines = request.split("\r\n")
        keep = [
            x for x in lines if x.lower().startswith(("via:", "v:", "from:", "to:", "call-id:"))
        ]
        keep += [x for x in lines if x.lower().startswith("cseq:")]
        reply = "\r\n".join(["SIP/2.0 200 OK", *keep, "Content-Length: 0"]) + "\r\n\r\n"
        self.sock.sendto(reply.encode(), self.target)

    def close(self) -> None:
        self.sock.close()


async def test_an_in_dialog_request_from_elsewhere_does_not_take_the_bye(
    kreis_server: Any, tmp_path: Path
) -> None:
    """The attack the home-made front fell for: an INFO from a second address carrying
    the call's Call-ID and tags. Kamailio routes by the record-routed dialog, not by
    the last sender, so the gateway's BYE still reaches the real phone."""
    needs("kamailio")
    dial_in = EdgeDialIn(tmp_path / "dial-in", kreis_server.ws_url, extra="pin_tries = 1")
    phone = UdpPhone(("127.0.0.1", dial_in.port))
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    attacker.settimeout(0.2)
    try:
        await dial_in.ready()
        await asyncio.to_thread(phone.invite)
        # The real phone enters a wrong PIN (one try): the gateway will hang up, after
        # its "wrong PIN" announcement.
        for n, digit in enumerate("98765#"):
            body = f"Signal={digit}\r\nDuration=160\r\n"
            phone.sock.sendto(
                phone.request("INFO", 2 + n, body, "application/dtmf-relay"), phone.target
            )
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.3)
        # Meanwhile the attacker's INFO: same dialog, its own Via and Contact.
        spoof = phone.request(
            "INFO",
            9,
            "Signal=5\r\nDuration=160\r\n",
            "application/dtmf-relay",
            attacker.getsockname()[1],
        )
        attacker.sendto(spoof, ("127.0.0.1", dial_in.port))
        bye = None
        deadline = time.monotonic() + 25
        while bye is None and time.monotonic() < deadline:
            msg = await asyncio.to_thread(phone.recv, 1)
            if msg is not None and msg.startswith("BYE "):
                bye = msg
        assert bye is not None, "the real phone never got the gateway's BYE"
        phone.answer(bye)
        to_attacker = []
        with_timeout = time.monotonic() + 0.5
        while time.monotonic() < with_timeout:
            try:
                data, _ = attacker.recvfrom(65535)
            except TimeoutError:
                continue
            to_attacker.append(data.decode(errors="replace").split("\r\n", 1)[0])
        print(f"the attacker received: {to_attacker}")
        assert not any(line.startswith("BYE") for line in to_attacker)
        await dial_in.wait_log("finished: pin_failed", timeout=5)
    finally:
        phone.close()
        attacker.close()
        code = dial_in.stop()
    assert code == 0, dial_in.log()[-3000:]


async def test_edge_refuses_callers_outside_allow_from(tmp_path: Path) -> None:
    """allow_from holds at the edge: 403 from Kamailio, no gateway sees the call."""
    needs("kamailio", "sipp")
    dial_in = EdgeDialIn(
        tmp_path / "dial-in", "ws://127.0.0.1:9/ws", extra='allow_from = ["192.0.2.0/24"]'
    )
    try:
        await dial_in.ready()
        xml = scenarios.write(tmp_path / "refused.xml", scenarios.rejected(403))
        refused = await asyncio.to_thread(run_sipp, xml, dial_in.target, tmp_path, 15)
        assert refused.returncode == 0, refused.stdout.decode()[-1500:]
        # Refused by Kamailio itself: no backend saw the INVITE (a backend would log it).
        assert dial_in.ringing() == []
        assert "outside allow_from" not in dial_in.log()
    finally:
        code = dial_in.stop()
    assert code == 0, dial_in.log()[-3000:]


def test_config_passes_kamailios_own_check(tmp_path: Path) -> None:
    """The generated config is accepted by `kamailio -c`, strips the source header
    from outside before setting it, and lists allow_from (IPv4 and IPv6)."""
    needs("kamailio")
    sip = parse_sip(
        {
            "udp_port": free_sip_port(),
            "tcp_port": 0,
            "processes": 2,
            "allow_from": ["127.0.0.0/8", "::1/128"],
        }
    )
    text = render_config(sip, free_sip_port(), tmp_path)
    (tmp_path / "dispatcher.list").write_text("1 sip:127.0.0.1:5999 0 0 duid=b0;maxload=4\n")
    (tmp_path / "kamailio.cfg").write_text(text)
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(tmp_path / "kamailio.cfg"), "-Y", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert text.index("route(FROM_OUTSIDE)") < text.index(f'append_hf("{SOURCE_HEADER}')
    assert f'remove_hf("{SOURCE_HEADER}")' in text.split("route[FROM_OUTSIDE]")[1]
    assert "src_ip == 127.0.0.0/8 || src_ip == [::1]/128" in text
    assert "xlog" not in text
