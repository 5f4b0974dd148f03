"""No phone number, caller name, room, PIN, IP address, SDP or ICE password in any log
of the server, the gateway or the console.

Run twice: at the default levels (server and gateway INFO, pjsip 2, console WARNING)
and at DEBUG everywhere (pjsip 5, where it dumps every SIP message with its SDP and
logs each DTMF digit; aiortc and aioice would log candidate pairs and whole SDPs). A
real `kreis serve` logs to files, `kreis dial-in` runs as its own process with its
output captured, and the console's audio (tests/sipgw/console_audio.py, logging set up
as `kreis console --log-dir` does) is in the room with its own log directory. A baresip phone calls
with a distinctive caller id (`"Erika Musterfrau" <sip:+4917612345678@…>`): one wrong
PIN, then the right one, the lobby, admission, a hang-up. Afterwards every log file
and every captured output is searched for the number (whole and its last digits), the
name, the room's slug, both PINs and DTMF digits. The leader does see the masked label
"Telefon …78": that is a message to the leader, not a log line.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kreis_server import GATEWAY_SECRET, start_server

from sipgw.endpoint import mask
from tests.sipgw.participant import leader_session, wait_entrant
from tests.sipgw.phones import BaresipPhone, DialInCommand, free_sip_port

pytestmark = [pytest.mark.sip, pytest.mark.timeout(150)]

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


def server_at(tmp: Path, level: str) -> Any:
    """`kreis serve` with `[logging] level = LEVEL` and its files under `tmp/logs`."""
    tmp.mkdir(parents=True)
    first = start_server(tmp)  # writes the config (and picks the port) once
    first.stop()
    config = first.config_path.read_text(encoding="utf-8")
    config = config.replace("[logging]\n", f'[logging]\nlevel = "{level}"\n', 1)
    first.config_path.write_text(config, encoding="utf-8")
    for old in first.log_dir.glob("*"):
        old.unlink()
    return start_server(tmp)


class DialInProcess(DialInCommand):
    """`kreis dial-in --log-level LEVEL` as its own process, output in one file."""

    def __init__(self, workdir: Path, server_ws: str, level: str, pjsip_level: int) -> None:
        port = free_sip_port()
        super().__init__(
            workdir,
            server_ws,
            secret=GATEWAY_SECRET,
            rtp_port=42000 + port % 8000,
            args=("--log-level", level, "--pjsip-log-level", str(pjsip_level)),
        )

    async def ready(self, timeout: float = 60) -> None:
        await self.wait_log("dial-in gateway ready", timeout=timeout)


def leaks(text: str, secrets: dict[str, re.Pattern[str]]) -> dict[str, list[str]]:
    """For each secret found in `text`, the lines it was found in (at most three)."""
    found: dict[str, list[str]] = {}
    for what, pattern in secrets.items():
        lines = [line[:300] for line in text.splitlines() if pattern.search(line)]
        if lines:
            found[what] = lines[:3]
    return found


def console_audio(tmp: Path, server: Any, level: str) -> subprocess.Popen[bytes]:
    """The console's audio in SLUG, logging into `tmp/logs` at `level`."""
    tmp.mkdir(parents=True)
    mic = tmp / "mic.wav"
    t = np.arange(48000) / 48000
    with wave.open(str(mic), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.sin(2 * np.pi * 600 * t) * 9000).astype(np.int16).tobytes())
    root = Path(__file__).resolve().parents[2]
    args = [server.url, server.group, server.password, SLUG, str(mic), str(tmp / "logs"), level]
    return subprocess.Popen(
        [sys.executable, str(root / "tests/sipgw/console_audio.py"), *args, "60"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=(tmp / "console.out").open("wb"),
        stderr=subprocess.STDOUT,
    )


ADDRESS_OR_SDP = {
    "IPv4 address": re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)"),
    # Eight groups, or fewer around a `::` (a clock's 02:04:36 is neither).
    "IPv6 address": re.compile(
        r"(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
        r"|(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?)(?![\w:])",
        re.I,
    ),
    "SDP": re.compile(r"v=0(?:\\r|\\n|\r|\n|$)|(?:^|\\n|\s)[mco]=(?:audio|video|IN |- )"),
    "ICE password": re.compile(r"ice-pwd|ice-ufrag|a=candidate", re.I),
}


@pytest.mark.parametrize(
    ("level", "pjsip_level", "console_level"),
    [("INFO", 2, "WARNING"), ("DEBUG", 5, "DEBUG")],
)
async def test_a_call_leaves_nothing_personal_in_any_log(
    tmp_path: Path, level: str, pjsip_level: int, console_level: str
) -> None:
    server = server_at(tmp_path / "server", level)
    dial_in = DialInProcess(tmp_path / "dial-in", server.ws_url, level, pjsip_level)
    phone = BaresipPhone(tmp_path / "phone", NUMBER, 440, display_name=NAME)
    leader = None
    console = None
    try:
        leader, pin = await leader_session(server.url, server.group, server.password, SLUG)
        assert pin != WRONG_PIN
        console = console_audio(tmp_path / "console", server, console_level)
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
        if console is not None:
            console.terminate()
            console.wait(20)
        code = dial_in.stop()
        server.stop()
    assert code == 0, dial_in.log()[-3000:]
    gateway_log = dial_in.log()
    assert "call 1 finished" in gateway_log, gateway_log[-3000:]
    console_out = (tmp_path / "console" / "console.out").read_text(errors="replace")
    assert "console joined" in console_out, console_out[-3000:]
    console_logs = sorted((tmp_path / "console" / "logs").glob("*"))

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
        **ADDRESS_OR_SDP,
    }
    files = sorted(p for p in server.log_dir.glob("*") if p.is_file())
    assert files, "the server wrote no log file"
    outputs = {str(p.relative_to(tmp_path)): p.read_text(errors="replace") for p in files}
    outputs["server/server.out"] = (tmp_path / "server" / "server.out").read_text(errors="replace")
    outputs["dial-in output"] = gateway_log
    outputs["console output"] = console_out
    for path in console_logs:
        outputs[str(path.relative_to(tmp_path))] = path.read_text(errors="replace")
    for name, text in outputs.items():
        print(f"{name}: {len(text.splitlines())} lines")
    found = {name: hits for name, text in outputs.items() if (hits := leaks(text, secrets))}
    assert not found, found
    if level == "DEBUG":  # the levels took: there was something to search
        assert '"level": "debug"' in gateway_log
        assert console_logs, "the console wrote no log at DEBUG"
