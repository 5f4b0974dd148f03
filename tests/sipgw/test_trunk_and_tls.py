"""The trunk registration and SIP over TLS, each against a real peer on loopback.

Registration: SIPp plays the trunk's registrar (`scenarios/trunk_registrar.xml`): it
challenges the REGISTER of Kamailio's `uac` module (run by `kreis dial-in` as its SIP
edge) with a digest 401, checks the credentials of the second REGISTER with
`verifyauth` and answers 200 OK only if they are right.

TLS: a throwaway self-signed certificate for 127.0.0.1, served by Kamailio (Debian's
OpenSSL 3; pjsip never does TLS); a baresip phone calls over `transport=tls`, enters
the PIN by RFC 4733, waits in a real room's lobby, is admitted, and its 440 Hz tone is
heard in the room (FFT); the leader ends the room and the gateway's BYE reaches the
phone over the phone's own TLS connection (the phone has no TLS listener of its own).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kreis_server import self_signed_cert

from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.participant import RoomParticipant, leader_session, wait_entrant
from tests.sipgw.phones import (
    RATE,
    BaresipPhone,
    DialInCommand,
    free_sip_port,
    run_sipp,
    start_sipp_server,
    tone_level,
    tone_ratio,
)
from tests.sipgw.wire import LoopbackCapture, clear_tone, payload

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TRUNK_USER = "kreis-trunk-4711"
TRUNK_PASSWORD = "trunk-geheimnis-2468"
"""What `scenarios/trunk_registrar.xml` accepts."""


def sipp_result(proc: subprocess.Popen[bytes], workdir: Path, timeout: float) -> tuple[int, str]:
    """SIPp's exit code once it has ended (killed after `timeout`) and its output."""
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait(5)
    errors = "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    return code, (workdir / "sipp.out").read_text(errors="replace")[-1500:] + errors[-1500:]


async def register_at_sipp(
    workdir: Path, server_ws: str, password: str
) -> tuple[int, str, DialInCommand]:
    """SIPp as the registrar, then `kreis dial-in` with a registrar: Kamailio's `uac`
    registers (pjsip never does)."""
    workdir.mkdir()
    port = free_sip_port()
    sipp = start_sipp_server(SCENARIOS / "trunk_registrar.xml", port, workdir, timeout=20)
    await asyncio.sleep(0.3)  # SIPp listens
    gw = DialInCommand(
        workdir / "dial-in",
        server_ws,
        secret="gateway-geheimnis-5678",
        rtp_port=42000 + port % 8000,
        sip_extra=f'registrar = "sip:127.0.0.1:{port}"\nuser = "{TRUNK_USER}"\n'
        f'password = "{password}"',
    )
    code, output = await asyncio.to_thread(sipp_result, sipp, workdir, 25)
    return code, output, gw


def registration_lines(gw: DialInCommand) -> list[str]:
    return re.findall(r'"msg": "(trunk registration [^"]*)"', gw.log())


async def test_gateway_registers_at_the_trunk_with_its_credentials(
    kreis_server: Any, tmp_path: Path
) -> None:
    code, output, gw = await register_at_sipp(
        tmp_path / "sipp", kreis_server.ws_url, TRUNK_PASSWORD
    )
    try:
        # verifyauth accepted user and password of the second REGISTER, the 200 OK went out.
        assert code == 0, output + gw.log()[-3000:]
        assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*1\b", output), output
        await gw.wait_log("trunk registration ok", timeout=10)
        lines = registration_lines(gw)
        print(lines)
        assert lines == ["trunk registration ok (expires in 300 s)"], lines
        assert gw.proc.poll() is None
    finally:
        assert gw.stop() == 0, gw.log()[-3000:]
    assert TRUNK_PASSWORD not in gw.log()


async def test_wrong_trunk_password_is_rejected_and_the_gateway_keeps_running(
    kreis_server: Any, tmp_path: Path
) -> None:
    code, output, gw = await register_at_sipp(
        tmp_path / "sipp", kreis_server.ws_url, "falsches-passwort-1357"
    )
    try:
        assert code != 0, "the registrar accepted a wrong password"
        assert re.search(r"Failed call\s*\|\s*\d+\s*\|\s*1\b", output), output
        await gw.wait_log("trunk registration failed", timeout=10)
        lines = registration_lines(gw)
        print(lines)
        assert "trunk registration failed: 403" in lines
        assert not any("registration ok" in line for line in lines), lines
        # Still serving: a call is answered (and ended by its caller) after the failure.
        await gw.wait_log("backend 0 is ready", timeout=30)
        await asyncio.sleep(2.5)  # Kamailio's first probe has found the gateway
        xml = scenarios.write(tmp_path / "call.xml", scenarios.info_pin("", hold_ms=500))
        call = await asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 20)
        assert call.returncode == 0, call.stdout.decode()[-2000:]
        assert gw.proc.poll() is None
    finally:
        assert gw.stop() == 0, gw.log()[-3000:]
    assert "falsches-passwort-1357" not in gw.log()


@pytest.mark.timeout(120)
async def test_caller_over_tls_reaches_the_lobby_and_is_heard_in_the_room(
    kreis_server: Any, tmp_path: Path
) -> None:
    cert, key = self_signed_cert(tmp_path)
    tls_port = free_sip_port()
    slug = "telefon-ueber-tls"
    leader, pin = await leader_session(
        kreis_server.url, kreis_server.group, kreis_server.password, slug
    )
    guest = RoomParticipant(kreis_server.url, slug, "Gast", 1000)
    # The phone verifies the edge against the throwaway cert (`sip_cafile`) and has no
    # TLS listener of its own: the BYE must come back over the phone's connection.
    # Its media is SRTP with SDES keys (`mediaenc=srtp-mand`).
    tls_lines = f"sip_cafile {cert}"
    phone = BaresipPhone(
        tmp_path / "tls-phone",
        "0301234563",
        440,
        extra_config=tls_lines,
        account_params=";mediaenc=srtp-mand",
    )
    clear = BaresipPhone(tmp_path / "clear-phone", "0301234564", 440, extra_config=tls_lines)
    capture = LoopbackCapture(phone.rtp_ports)
    gw: DialInCommand | None = None
    try:
        await guest.join(leader)
        # With TLS, `kreis dial-in` runs Kamailio in front of one gateway process.
        gw = DialInCommand(
            tmp_path / "dial-in",
            kreis_server.ws_url,
            secret=kreis_server.gateway_secret,
            rtp_port=42000 + tls_port % 8000,
            sip_extra=f'tls_port = {tls_port}\ntls_cert = "{cert}"\ntls_key = "{key}"',
        )
        await gw.wait_log("dial-in edge ready")
        await gw.wait_log("backend 0 is ready", timeout=30)
        await asyncio.sleep(2.5)  # Kamailio's first probe has found the gateway
        # A TLS caller offering plain RTP is refused (488): no voice in clear.
        await asyncio.to_thread(clear.start)
        clear.dial(f"sip:kreis@127.0.0.1:{tls_port};transport=tls")
        assert await asyncio.to_thread(clear.wait_for, "488", 10), clear.output()[-2000:]
        await asyncio.to_thread(phone.start)
        phone.dial(f"sip:kreis@127.0.0.1:{tls_port};transport=tls")
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10), phone.output()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.digits, pin + "#", 0.22)
        entrant = await wait_entrant(leader, slug, "Telefon")
        assert entrant["name"] == "Telefon …63"
        await asyncio.sleep(2)
        lobby_end = time.monotonic()
        assert tone_level(guest.heard_since(lobby_end - 2), 440) < 30, "caller heard early"
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await asyncio.sleep(7)
        room_heard = guest.heard_since(lobby_end + 2.0)
        capture.stop()
        # The leader ends the room: the gateway's BYE reaches the phone over its own
        # TLS connection (it has no listener for a new one).
        await leader.send({"type": "end_room", "room": slug})
        assert await asyncio.to_thread(phone.wait_for, "terminated", 15), phone.output()[-2000:]
        assert gw.proc.poll() is None, gw.log()[-3000:]
    finally:
        capture.stop()
        if gw is not None:
            assert gw.stop() == 0, gw.log()[-3000:]
        await asyncio.to_thread(clear.stop)
        await asyncio.to_thread(phone.stop)
        await guest.close()
        await leader.close()
    out = phone.output()
    # The dialog ran over TLS (the port has only the TLS listener), the phone checked
    # the gateway's certificate against its CA file, and no handshake failed.
    assert f"Call established: sip:kreis@127.0.0.1:{tls_port};transport=tls" in out
    assert "adding SIP CA" in out
    assert "accept error" not in out and "handshake" not in out.lower(), out[-3000:]
    level, ratio = tone_level(room_heard, 440), tone_ratio(room_heard, 440)
    print(f"room heard {len(room_heard) / RATE:.1f} s: 440 Hz level {level:.0f}, ratio {ratio:.1f}")
    assert len(room_heard) > 2 * RATE, "the participant received no audio from the caller"
    assert level > 1000, "the caller's voice did not reach the room"
    assert ratio > 8
    # On the wire, decoded as the codec each packet claims, neither the phone's 440 Hz
    # nor the room's 1000 Hz is there: the payloads are encrypted (clear RTP of a tone
    # decodes with a ratio in the thousands, see tests/sipgw/wire.py).
    sent, received = capture.rtp_from(phone.rtp_ports), capture.rtp_to(phone.rtp_ports)
    up = clear_tone(sent, 440)
    down = clear_tone(received, 1000)
    print(f"on the wire: phone -> gateway {up}, gateway -> phone {down} (level, ratio, packets)")
    types = sorted({payload(p)[0] for p in sent + received})
    seen = f"{len(capture.packets)} UDP, {len(sent)}/{len(received)} RTP, types {types}"
    assert up[2] > 200 and down[2] > 200, f"too few RTP packets captured: {seen}"
    assert up[1] < 3 and down[1] < 3, "a tone is audible in the captured RTP payloads"
