"""No phone number, caller name, room or PIN in any log of the server or the gateway.

A real `kreis serve` logs to files (at DEBUG), `kreis dial-in` runs as its own process
at DEBUG with its output captured, once with pjsip's default log level (2) and once at
5, where pjsip dumps every SIP message and logs each DTMF digit. A baresip phone calls
with a distinctive caller id (`"Erika Musterfrau" <sip:+4917612345678@…>`): one wrong
PIN, then the right one, the lobby, admission, a hang-up. Afterwards every log file
and every captured output is searched for the number (whole and its last digits), the
name, the room's slug, both PINs and DTMF digits. The leader does see the masked label
"Telefon …78": that is a message to the leader, not a log line.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from kreis_server import GATEWAY_SECRET, start_server

from sipgw.endpoint import mask
from tests.sipgw.participant import leader_session, wait_entrant
from tests.sipgw.phones import BaresipPhone, DialInCommand, free_sip_port

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

NUMBER = "+4917612345678"
NAME = "Erika Musterfrau"
SLUG = "erikas-vertrauliche-runde"
WRONG_PIN = "918273645"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (
            'From: "Erika Musterfrau" <sip:+4917612345678@[ip]>;tag=f1',
            'From: "***" <sip:***>;tag=f1',
        ),
        ("From: Erika Musterfrau <sip:+4917612345678@[ip]>", "From: *** <sip:***>"),
        (
            '  [DISCONNECTED] To: "Erika" <tel:+4917612345678>',
            '  [DISCONNECTED] To: "***" <tel:***>',
        ),
        ("Received DTMF digit 9, vol=10", "Received DTMF digit ?, vol=10"),
        ("Signal=5\nDuration=160", "Signal=?\nDuration=<n>"),
        ('Module "mod-msg-print" registered', 'Module "mod-msg-print" registered'),
    ],
)
def test_pjsip_lines_lose_names_and_dtmf_digits(line: str, masked: str) -> None:
    assert mask(line) == masked


def server_at_debug(tmp: Path) -> Any:
    """`kreis serve` with `[logging] level = "DEBUG"` and its files under `tmp/logs`."""
    tmp.mkdir(parents=True)
    first = start_server(tmp)  # writes the config (and picks the port) once
    first.stop()
    config = first.config_path.read_text(encoding="utf-8")
    config = config.replace("[logging]\n", '[logging]\nlevel = "DEBUG"\n', 1)
    first.config_path.write_text(config, encoding="utf-8")
    for old in first.log_dir.glob("*"):
        old.unlink()
    return start_server(tmp)


class DialInProcess(DialInCommand):
    """`kreis dial-in --log-level DEBUG` as its own process, output in one file."""

    def __init__(self, workdir: Path, server_ws: str, pjsip_level: int) -> None:
        port = free_sip_port()
        super().__init__(
            workdir,
            server_ws,
            secret=GATEWAY_SECRET,
            rtp_port=42000 + port % 8000,
            args=("--log-level", "DEBUG", "--pjsip-log-level", str(pjsip_level)),
        )

    async def ready(self, timeout: float = 20) -> None:
        await self.wait_log("dial-in gateway ready", timeout=timeout)


def leaks(text: str, secrets: dict[str, re.Pattern[str]]) -> dict[str, list[str]]:
    """For each secret found in `text`, the lines it was found in (at most three)."""
    found: dict[str, list[str]] = {}
    for what, pattern in secrets.items():
        lines = [line[:300] for line in text.splitlines() if pattern.search(line)]
        if lines:
            found[what] = lines[:3]
    return found


@pytest.mark.parametrize("pjsip_level", [2, 5])
async def test_a_call_leaves_no_number_name_room_or_pin_in_any_log(
    tmp_path: Path, pjsip_level: int
) -> None:
    server = server_at_debug(tmp_path / "server")
    dial_in = DialInProcess(tmp_path / "dial-in", server.ws_url, pjsip_level)
    phone = BaresipPhone(tmp_path / "phone", NUMBER, 440, display_name=NAME)
    leader = None
    try:
        leader, pin = await leader_session(server.url, server.group, server.password, SLUG)
        assert pin != WRONG_PIN
        await dial_in.ready()
        await asyncio.to_thread(phone.start)
        phone.dial(f"sip:kreis@127.0.0.1:{dial_in.port}")
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.digits, WRONG_PIN + "#", 0.22)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(phone.digits, pin + "#", 0.22)
        entrant = await wait_entrant(leader, SLUG, "Telefon")
        assert entrant["name"] == "Telefon …78"  # what the leader sees: two digits
        await asyncio.sleep(2.0)
        await leader.send({"type": "admit", "room": SLUG, "id": entrant["id"]})
        await asyncio.sleep(4.0)
        phone.hangup()
        assert await asyncio.to_thread(phone.wait_for, "terminated", 10)
        await asyncio.sleep(1.0)
    finally:
        await asyncio.to_thread(phone.stop)
        if leader is not None:
            await leader.close()
        code = dial_in.stop()
        server.stop()
    assert code == 0, dial_in.log()[-3000:]
    gateway_log = dial_in.log()
    assert "call 1 finished" in gateway_log, gateway_log[-3000:]
    assert "DEBUG" in gateway_log

    digits = NUMBER.lstrip("+")
    secrets = {
        "number": re.compile(re.escape(digits)),
        "national number": re.compile(re.escape(digits[2:])),
        # A run of digits ending in the number's last six (random digits such as RTP
        # timestamps contain them by chance far more often than they end in them).
        "last six digits": re.compile(digits[-6:] + r"(?!\d)"),
        "name": re.compile(r"erika|musterfrau", re.I),
        "room": re.compile(re.escape(SLUG)),
        "pin": re.compile(re.escape(pin)),
        "wrong pin": re.compile(re.escape(WRONG_PIN)),
        "phone's SIP address": re.compile(re.escape(f"127.0.0.1:{phone.port}")),
        # pjsip logs DTMF one digit a line: together the lines spell the PIN.
        "dtmf digit": re.compile(r"\b(?:digit|signal)[ \t]*[=:]?[ \t]*[0-9A-D*#](?!\w)", re.I),
    }
    files = sorted(p for p in server.log_dir.glob("*") if p.is_file())
    assert files, "the server wrote no log file"
    outputs = {str(p.relative_to(tmp_path)): p.read_text(errors="replace") for p in files}
    outputs["server/server.out"] = (tmp_path / "server" / "server.out").read_text(errors="replace")
    outputs["dial-in output"] = gateway_log
    for name, text in outputs.items():
        print(f"{name}: {len(text.splitlines())} lines")
    found = {name: hits for name, text in outputs.items() if (hits := leaks(text, secrets))}
    assert not found, found
