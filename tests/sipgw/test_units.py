"""Unit tests of the gateway's parts that need no SIP stack: config, lockout, labels,
log masking, the audio plumbing, the layering rule, and a whole call's flow driven
through `CallSession` with an in-memory room and a simulated media clock."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import config_from_dict
from app.errors import ConfigError as ServerConfigError
from sipgw.announce import NAMES, Prompts
from sipgw.audio import FRAME_SAMPLES, CallAudio, RoomMix, WaitingTone
from sipgw.config import MAX_CALL_SLOTS, load, parse
from sipgw.endpoint import mask
from sipgw.errors import ConfigError
from sipgw.link import CallerLabel, LinkEvent
from sipgw.lockout import caller_keys, pins_equal
from sipgw.phone import caller_digits, caller_number, source_ip
from sipgw.session import CallSession, SessionSettings
from tests.sipgw.fakes import FakeServer

SIPGW = Path(__file__).resolve().parents[2] / "sipgw"


# That sipgw imports no server module is tests/tui/test_layering.py's job (it follows
# imports through the client modules, which a check of direct imports here did not).


def test_server_and_gateway_read_gateway_alike() -> None:
    """`[gateway]` has one reader (app.gatewayconfig): the server and the gateway take
    and refuse the same tables and see the same values (they once differed on
    pin_length 4-5 and on the default server_url)."""
    tables: list[dict[str, Any]] = [
        {"secret": "s"},
        {"secret": "s", "pin_length": 4},
        {"secret": "s", "pin_length": 6},
        {"secret": "s", "pin_length": 17},
        {"secret": "s", "server_url": "ws://127.0.0.1:9/ws"},
        {"secret": "s", "server_url": "ftp://x"},
        {"secret": "s", "pin_lenght": 9},
    ]
    for table in tables:
        try:
            server: object = config_from_dict({"gateway": table}).gateway
        except ServerConfigError:
            server = "refused"
        try:
            gateway: object = parse({"gateway": table}).gateway
        except ConfigError:
            gateway = "refused"
        assert server == gateway, table
    assert parse({"gateway": {"secret": "s"}}).gateway.server_url == "http://127.0.0.1:8080"


def test_config_defaults_and_errors_name_the_key() -> None:
    config = parse({"gateway": {"secret": "s"}})
    assert config.sip.udp_port == 5060 and config.sip.pin_tries == 3
    assert config.sip.allows("127.0.0.1") and config.sip.allows("::1")
    assert not config.sip.allows("10.1.2.3") and not config.sip.allows("nonsense")
    assert config.gateway.pin_length == 9 and config.sip.language == "de"
    cases = [
        ({}, "[gateway] table is missing"),
        ({"gateway": {}}, "[gateway] secret"),
        ({"gateway": {"secret": "s"}, "sip": {"udp_port": "x"}}, "[sip] udp_port"),
        ({"gateway": {"secret": "s"}, "sip": {"udp_port": True}}, "[sip] udp_port"),
        ({"gateway": {"secret": "s"}, "sip": {"allow_from": ["nope"]}}, "[sip] allow_from"),
        ({"gateway": {"secret": "s"}, "sip": {"language": "fr"}}, "[sip] language"),
        ({"gateway": {"secret": "s"}, "sip": {"tls_cert": "/x"}}, "tls_key"),
        ({"gateway": {"secret": "s"}, "sip": {"max_calls": 0}}, "[sip] max_calls"),
        ({"gateway": {"secret": "s", "server_url": "ftp://x"}}, "[gateway] server_url"),
    ]
    for data, text in cases:
        with pytest.raises(ConfigError, match=text.replace("[", r"\[").replace("]", r"\]")):
            parse(data)


def test_the_shared_example_config_loads() -> None:
    with pytest.raises(ConfigError, match="secret"):  # empty there: dial-in is off
        load(SIPGW.parent / "config.example.toml")
    data = tomllib.loads((SIPGW.parent / "config.example.toml").read_text(encoding="utf-8"))
    data["gateway"]["secret"] = "s"
    config = parse(data)
    assert config.sip.max_calls <= MAX_CALL_SLOTS
    assert config.sip.registrar is None and config.sip.tls_cert is None


def test_caller_label_shows_two_digits_at_most() -> None:
    assert CallerLabel.from_digits("0301234547", False).text == "…47"
    assert CallerLabel.from_digits("0301234547", True).text is None
    assert CallerLabel.from_digits("", False).text is None
    assert caller_digits('"Anna" <sip:+49 30 1234547@example.org>;tag=1') == "49301234547"
    assert caller_digits("<sip:anonymous@anonymous.invalid>") == ""
    assert source_ip("127.0.0.1:5060") == "127.0.0.1" and source_ip("[::1]:5060") == "::1"


def test_pjsip_log_lines_are_masked() -> None:
    line = (
        'Incoming INVITE from "x" <sip:0301234547@10.1.2.3:5060> via 192.168.1.5:5060 pin 123456789'
    )
    out = mask(line)
    for secret in ("0301234547", "10.1.2.3", "192.168.1.5", "123456789"):
        assert secret not in out
    assert "[::1]:5060" not in mask("from [::1]:5060")


def test_lockout_keys_are_keyed_hashes_shared_by_every_gateway_process() -> None:
    keys = caller_keys("geheim", "0301234547", "10.0.0.1", "4930123")
    again = caller_keys("geheim", "0301234547", "10.0.0.1", "4930123")  # another process
    other = caller_keys("geheim", "0309999999", "10.0.0.1", "4930123")
    assert keys == again
    assert keys.caller != other.caller and keys.source == other.source
    assert caller_keys("anders", "0301234547", "10.0.0.1", "4930123").caller != keys.caller
    fields = keys.message_fields()
    assert all(len(v) == 32 for v in fields.values())
    assert "0301234547" not in repr(fields) and "10.0.0.1" not in repr(fields)
    # Withheld: a key from source, trunk and the phone's fingerprint, not one for all.
    hidden = caller_keys("geheim", "", "10.0.0.1", "4930123", "baresip\0host")
    hidden_too = caller_keys("geheim", "", "10.0.0.1", "4930123", "Yealink\0host")
    assert hidden.caller != hidden_too.caller
    assert pins_equal("123456789", "123456789") and not pins_equal("123456789", "123456780")


LONG_NAME = "Erika " + "<sip:0123456789@x> " * 16  # 300 characters, digits and all


@pytest.mark.parametrize(
    ("head", "trusted", "number"),
    [
        (f'From: "{LONG_NAME}" <sip:+4917612345678@203.0.113.5>;tag=a', False, "4917612345678"),
        ("f: <sip:0301234547@trunk>;tag=a", False, "0301234547"),
        ("From: sip:0301234547@trunk;tag=a", False, "0301234547"),
        ('From: "Anonymous" <sip:anonymous@anonymous.invalid>;tag=a', False, ""),
        (
            "From: <sip:anonymous@trunk>;tag=a\r\nP-Asserted-Identity: <tel:+4930111222>",
            True,
            "4930111222",
        ),
        (  # from an untrusted source, P-Asserted-Identity is anybody's claim
            "From: <sip:0301234547@trunk>;tag=a\r\nP-Asserted-Identity: <tel:+4930111222>",
            False,
            "0301234547",
        ),
    ],
)
def test_caller_number_from_the_parsed_invite(head: str, trusted: bool, number: str) -> None:
    invite = f"INVITE sip:kreis@gw SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n{head}\r\n\r\nv=0\r\n"
    assert caller_number(invite, trusted) == number
    label = CallerLabel.from_digits(number, hide_numbers=False)
    assert label.withheld is (number == "")
    assert label.text == (f"…{number[-2:]}" if number else None)


def test_room_mix_sums_tracks_skips_own_and_bounds_delay() -> None:
    mix = RoomMix(prebuffer_ms=40, max_buffer_ms=100)
    mix.excluded.add("p_me")
    one = np.full(FRAME_SAMPLES, 1000, np.int16)
    mix.push("p_me#0", one)
    assert mix.read(FRAME_SAMPLES) is None
    mix.push("p_a#1", one)
    assert mix.read(FRAME_SAMPLES) is None  # prebuffering
    mix.push("p_a#1", one)
    mix.push("p_b#2", np.full(FRAME_SAMPLES * 2, 30000, np.int16))
    out = mix.read(FRAME_SAMPLES)
    assert out is not None and int(out[0]) == 31000
    for _ in range(20):
        mix.push("p_a#1", one)
    assert mix._sizes["p_a#1"] <= 100 * 16  # old audio dropped, not queued up
    loud = mix.read(FRAME_SAMPLES)
    assert loud is not None and loud.max() <= 32767


def test_call_audio_plays_prompts_over_background_and_mutes_caller() -> None:
    audio = CallAudio()
    done: list[bool] = []
    audio.set_background(WaitingTone())
    audio.play(np.full(FRAME_SAMPLES * 2, 500, np.int16), lambda: done.append(True))
    frames = [np.frombuffer(audio.next_frame(), "<i2") for _ in range(3)]
    assert done == [True] and len(frames[0]) == FRAME_SAMPLES
    got: list[np.ndarray] = []
    audio.set_sink(got.append)
    audio.muted = True
    audio.caller_frame(np.full(FRAME_SAMPLES, 99, np.int16))
    assert not got[0].any()


def test_all_prompts_exist_in_both_languages() -> None:
    prompts = Prompts()
    for name in NAMES:
        for lang in ("de", "en"):
            assert 0.5 < prompts.get(lang, name).seconds < 12


class _Clock:
    """Plays a call's audio as fast as possible (the media clock, simulated)."""

    def __init__(self, audio: CallAudio) -> None:
        self.audio = audio
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.audio.next_frame()
            await asyncio.sleep(0)


async def run_session(
    digits: list[str], lobby: bool, events: list[LinkEvent], language: str = "de"
) -> tuple[Any, Any]:
    fake = FakeServer()
    fake.add_room("r", "123456789", lobby=lobby)
    fake.sessions = []  # type: ignore[attr-defined]
    audio = CallAudio()
    hung: list[bool] = []

    async def hangup(code: int) -> None:
        hung.append(True)

    async def answer(code: int) -> None:
        pass

    session = CallSession(
        audio=audio,
        answer=answer,
        hangup=hangup,
        link=fake.factory()(),
        prompts=Prompts(),
        keys=caller_keys("geheim", "0301234547", "127.0.0.1", "kreis"),
        label=CallerLabel("…47"),
        settings=SessionSettings(first_digit_timeout=1, digit_timeout=1, language=language),
    )
    fake.sessions.append(session)
    clock = _Clock(audio)
    task = asyncio.create_task(session.run())
    for digit in digits:
        await asyncio.sleep(0.01)
        session.on_dtmf(digit)
    link = fake.links[0]
    for event in events:
        await asyncio.sleep(0.2)
        if event is LinkEvent.ADMITTED:
            link.admit()
        else:
            link.tell(event)
    outcome = await asyncio.wait_for(task, 20)
    clock.task.cancel()
    assert hung and link.closed
    return outcome, fake


async def test_session_lobby_admit_then_room_ends() -> None:
    outcome, fake = await run_session(
        list("123456789"), True, [LinkEvent.ADMITTED, LinkEvent.ENDED]
    )
    assert outcome == "ended" and fake.labels == ["…47"]


async def test_session_denied_in_lobby() -> None:
    outcome, _ = await run_session(list("123456789"), True, [LinkEvent.DENIED])
    assert outcome == "denied"


async def test_session_three_wrong_pins() -> None:
    digits = list("111#") + list("222#") + list("333#")
    outcome, fake = await run_session(digits, True, [])
    assert outcome in ("locked", "pin_failed") and fake.pins_tried == ["111", "222", "333"]


async def test_caller_chooses_english() -> None:
    outcome, fake = await run_session(
        ["2", *"123456789"], False, [LinkEvent.ENDED], language="choose"
    )
    assert outcome == "ended" and fake.sessions[0].lang == "en"


async def test_silent_caller_is_let_go_early() -> None:
    outcome, fake = await run_session([], True, [])
    assert outcome == "silent" and fake.pins_tried == []


def test_the_pjproject_functions_pjsua2_does_not_wrap_are_still_there() -> None:
    from sipgw import pjmedia_private

    lib = pjmedia_private.library()
    missing = [name for name in pjmedia_private.NEEDED if not hasattr(lib, name)]
    assert not missing, f"the pjsua2 wheel no longer exports {missing}"
