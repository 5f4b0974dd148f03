"""The trunk registration and SIP over TLS, each against a real peer on loopback.

Registration: SIPp plays the trunk's registrar (`scenarios/trunk_registrar.xml`): it
challenges the gateway's REGISTER with a digest 401, checks the credentials of the
second REGISTER with `verifyauth` and answers 200 OK only if they are right.

TLS: a throwaway self-signed certificate for 127.0.0.1; a baresip phone calls the
gateway over `transport=tls`, enters the PIN by RFC 4733, waits in a real room's lobby,
is admitted, and its 440 Hz tone is heard in the room (FFT).
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.phones import free_sip_port, run_sipp, start_sipp_server

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
    start_gateway: Any, workdir: Path, password: str
) -> tuple[int, str, Any]:
    workdir.mkdir()
    port = free_sip_port()
    sipp = start_sipp_server(SCENARIOS / "trunk_registrar.xml", port, workdir, timeout=20)
    await asyncio.sleep(0.3)  # SIPp listens
    gw = await start_gateway(registrar=f"sip:127.0.0.1:{port}", user=TRUNK_USER, password=password)
    code, output = await asyncio.to_thread(sipp_result, sipp, workdir, 25)
    return code, output, gw


def gateway_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("sipgw")]


async def until_logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    for _ in range(100):
        lines = gateway_lines(caplog)
        if any(text in line for line in lines):
            return lines
        await asyncio.sleep(0.05)
    raise AssertionError(f"the gateway never logged {text!r}: {gateway_lines(caplog)}")


async def test_gateway_registers_at_the_trunk_with_its_credentials(
    start_gateway: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sipgw")
    code, output, gw = await register_at_sipp(start_gateway, tmp_path / "sipp", TRUNK_PASSWORD)
    # verifyauth accepted user and password of the second REGISTER, the 200 OK went out.
    assert code == 0, output
    assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*1\b", output), output
    lines = await until_logged(caplog, "trunk registration ok")
    print(lines)
    assert "trunk registration ok (200, expires in 300 s)" in lines
    assert not any("failed" in line for line in lines), lines
    assert gw.alive()


async def test_wrong_trunk_password_is_rejected_and_the_gateway_keeps_running(
    start_gateway: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sipgw")
    code, output, gw = await register_at_sipp(
        start_gateway, tmp_path / "sipp", "falsches-passwort-1357"
    )
    assert code != 0, "the registrar accepted a wrong password"
    assert re.search(r"Failed call\s*\|\s*\d+\s*\|\s*1\b", output), output
    lines = await until_logged(caplog, "trunk registration failed")
    print(lines)
    assert "trunk registration failed: 403 Forbidden" in lines
    assert not any("registration ok" in line for line in lines), lines
    # Still serving: a call is answered (and ended by its caller) after the failure.
    assert gw.alive()
    xml = scenarios.write(tmp_path / "call.xml", scenarios.info_pin("", hold_ms=500))
    call = await asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 20)
    assert call.returncode == 0, call.stdout.decode()[-2000:]
    assert gw.alive()
