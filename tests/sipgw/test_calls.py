"""Real SIP callers (baresip, SIPp) against the gateway, with an in-memory room behind it.

These tests check the SIP side on its own: PIN by RFC 4733 and by SIP INFO, the lobby
(nothing of the room is heard before admission), audio both ways after it, star codes,
wrong PINs and the lockout, the allow-list, REFER refusal. Audio is checked from what
the phone actually recorded, with an FFT at the test tones' frequencies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sipgw.announce import Prompts
from sipgw.link import LinkEvent
from sipgw.pjmedia_private import HANDLED
from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.fakes import FakeLink, FakeServer
from tests.sipgw.phones import RATE, prompt_match, run_sipp, tone_level, tone_ratio

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]

PIN = "123456789"


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def feed_tone(link_of: Callable[[], FakeLink | None], hz: float, stop: asyncio.Event) -> None:
    """Plays a tone "from the room" in real time, 20 ms at a time, without drift."""
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        due = int((time.monotonic() - start) * RATE)
        if due > sent:
            t = (np.arange(sent, due)) / RATE
            link = link_of()
            if link is not None:
                link.push_room_audio((np.sin(2 * np.pi * hz * t) * 9000).astype(np.int16))
            sent = due
        await asyncio.sleep(0.02)


def window(pcm: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return pcm[int(t0 * RATE) : int(t1 * RATE)]


async def test_caller_enters_pin_waits_in_lobby_then_talks_both_ways(
    start_gateway: Any, phones: Any
) -> None:
    fake = FakeServer()
    fake.add_room("dienstag-abend", PIN, lobby=True)
    gw = await start_gateway(fake)
    phone = phones("anna", number="0301234547", tone_hz=440)
    stop = asyncio.Event()
    feeder = asyncio.create_task(
        feed_tone(lambda: fake.links[0] if fake.links else None, 1000, stop)
    )
    try:
        phone.dial(gw.uri)
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
        t_call = time.monotonic()
        await asyncio.sleep(1.5)  # part of the greeting
        await asyncio.to_thread(phone.digits, PIN + "#")
        link = await until(
            lambda: fake.links and fake.links[0].in_lobby and fake.links[0], 10, "lobby"
        )
        assert fake.labels == ["…47"]  # the last two digits only
        t_lobby = time.monotonic() - t_call
        await asyncio.sleep(6)  # the room plays 1 kHz all along; the caller must not hear it
        assert link.caller_pcm().size == 0, "caller audio left the gateway before admission"
        t_admit = time.monotonic() - t_call
        link.admit()
        await asyncio.sleep(4.0)
        await asyncio.to_thread(phone.digits, "*6*9", 0.3)
        await until(lambda: link.mic == [False] and link.hands == [True], 5, "star codes")
        t_end = time.monotonic() - t_call
        phone.hangup()
        await until(lambda: link.closed, 10, "link closed after hangup")
    finally:
        stop.set()
        await feeder
    heard = phone.heard()
    lobby = window(heard, t_lobby + 0.5, t_admit - 0.3)
    meeting = window(heard, t_admit + 0.8, t_end - 0.2)
    # The lobby has speech (the prompt) and the chime, but no steady 1 kHz tone.
    assert tone_ratio(lobby, 1000) < 4, "room audio reached a caller in the lobby"
    assert tone_level(lobby, 1000) < 0.1 * tone_level(meeting, 1000)
    chime = window(heard, t_lobby + 3.8, t_lobby + 5.0)  # after the lobby prompt
    assert tone_ratio(chime, 523.25) > 4, "no waiting tone in the lobby"
    assert tone_level(meeting, 1000) > 1000, "room audio did not reach the admitted caller"
    assert tone_ratio(meeting, 1000) > 8
    assert tone_ratio(meeting, 440) < 4, "the caller hears their own voice"
    said = link.caller_pcm()
    assert len(said) > 2 * RATE
    assert tone_level(said, 440) > 1000, "the caller's voice did not reach the room"
    assert tone_level(said, 1000) < 0.05 * tone_level(said, 440)


async def test_wrong_pin_three_times_hangs_up_and_locks_out(
    start_gateway: Any, phones: Any
) -> None:
    fake = FakeServer()
    fake.add_room("r1", PIN)
    gw = await start_gateway(fake, lockout_seconds=60)
    phone = phones("mallory", number="0309999999")
    phone.dial(gw.uri)
    assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
    await asyncio.sleep(0.5)
    # Neighbouring digits differ: a phone repeating one digit fast sends one long event.
    for wrong in ("121212121#", "343434343#", "565656565#"):
        await asyncio.to_thread(phone.digits, wrong, 0.2)
        await asyncio.sleep(0.8)
    assert await asyncio.to_thread(phone.wait_for, "terminated", 15), "no hang-up after 3 tries"
    assert fake.pins_tried == ["121212121", "343434343", "565656565"]
    # Calling again at once: the server (here the fake) refuses the locked caller's key
    # without looking at its PIN.
    # It hears why as early media (183) and is refused (403): never a billable 200.
    mark = len(phone.output())
    phone.dial(gw.uri)
    ended = await asyncio.to_thread(phone.wait_for, "session closed: 403", 25, mark)
    later = phone.output()[mark:]
    assert ended, later[-2500:]
    assert "Call established" not in later, later[-1500:]
    assert fake.pins_tried == ["121212121", "343434343", "565656565"]
    assert gw.alive()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_pin_by_sip_info(start_gateway: Any, tmp_path: Path, transport: str) -> None:
    fake = FakeServer()
    fake.add_room("r2", PIN, lobby=False)
    gw = await start_gateway(fake)
    xml = scenarios.write(tmp_path / "info.xml", scenarios.info_pin(PIN + "#"))
    extra = ["-t", "t1"] if transport == "tcp" else []
    result = await asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 30, extra)
    assert result.returncode == 0, result.stdout.decode()[-2000:] + result.stderr.decode()[-2000:]
    assert fake.pins_tried == [PIN]
    assert fake.labels == ["…11"]
    await until(lambda: fake.links[0].closed, 10, "link closed after BYE")


async def test_refer_is_refused(start_gateway: Any, tmp_path: Path) -> None:
    gw = await start_gateway()
    xml = scenarios.write(tmp_path / "refer.xml", scenarios.refer())
    result = await asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 20)
    assert result.returncode == 0, result.stdout.decode()[-2000:] + result.stderr.decode()[-2000:]
    assert gw.alive()


async def test_source_outside_allow_list_gets_403(start_gateway: Any, tmp_path: Path) -> None:
    fake = FakeServer()
    gw = await start_gateway(fake, allow_from=["10.0.0.0/8"])
    xml = scenarios.write(tmp_path / "reject.xml", scenarios.rejected(403))
    result = await asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 20)
    assert result.returncode == 0, result.stdout.decode()[-2000:] + result.stderr.decode()[-2000:]
    assert fake.links == []


async def test_two_callers_in_two_rooms_stay_apart(start_gateway: Any, phones: Any) -> None:
    fake = FakeServer()
    fake.add_room("raum-a", "111222333", lobby=False)
    fake.add_room("raum-b", "444555666", lobby=False)
    gw = await start_gateway(fake)
    a = phones("a", number="030111111", tone_hz=440)
    b = phones("b", number="030222222", tone_hz=700)
    a.dial(gw.uri)
    b.dial(gw.uri)
    assert await asyncio.to_thread(a.wait_for, "Call established", 10)
    assert await asyncio.to_thread(b.wait_for, "Call established", 10)
    await asyncio.sleep(0.5)
    await asyncio.gather(
        asyncio.to_thread(a.digits, "111222333#", 0.15),
        asyncio.to_thread(b.digits, "444555666#", 0.15),
    )
    await until(lambda: len(fake.links) == 2 and all(ln.admitted for ln in fake.links), 10, "in")
    by_room = {ln.room.slug: ln for ln in fake.links if ln.room}
    await asyncio.sleep(3)
    # One call ending must not disturb the other.
    a.hangup()
    await until(lambda: by_room["raum-a"].closed, 10, "a gone")
    before = len(by_room["raum-b"].caller_pcm())
    await asyncio.sleep(1.5)
    assert len(by_room["raum-b"].caller_pcm()) > before + RATE, "b's audio stopped with a"
    b.hangup()
    said_a, said_b = by_room["raum-a"].caller_pcm(), by_room["raum-b"].caller_pcm()
    assert tone_level(said_a, 440) > 1000 and tone_level(said_a, 700) < 100
    assert tone_level(said_b, 700) > 1000 and tone_level(said_b, 440) < 100


async def test_mute_request_is_announced(start_gateway: Any, phones: Any) -> None:
    fake = FakeServer()
    fake.add_room("r3", PIN, lobby=False)
    gw = await start_gateway(fake)
    phone = phones("c")
    phone.dial(gw.uri)
    assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
    t_call = time.monotonic()
    await asyncio.sleep(0.3)
    await asyncio.to_thread(phone.digits, PIN + "#", 0.2)
    link = await until(lambda: fake.links and fake.links[0].admitted and fake.links[0], 10, "in")
    await asyncio.sleep(7.5)  # the "you are in the meeting" prompt
    t_req = time.monotonic() - t_call
    link.tell(LinkEvent.MUTE_REQUEST)
    await asyncio.sleep(3)
    link.tell(LinkEvent.ENDED)
    assert await asyncio.to_thread(phone.wait_for, "terminated", 15)
    heard = phone.heard().astype(np.float64)
    before = window(heard, t_req - 1.0, t_req - 0.1)
    after = window(heard, t_req, t_req + 3.0)
    assert np.sqrt(np.mean(before**2)) < 100, "expected silence before the request"
    # The announcement is the mute_request prompt itself (the caller's language is
    # German by default), recognised by its waveform; any other prompt would not do.
    prompts = Prompts()
    start = slice(0, 2 * RATE)
    said = prompt_match(after, prompts.get("de", "mute_request").pcm[start])
    other = max(
        prompt_match(after, prompts.get("de", name).pcm[start])
        for name in ("muted", "unmuted", "hand_up", "hand_down", "removed", "ended")
    )
    assert said > 0.6 and said > 2 * other, f"not the mute request: {said:.2f} vs {other:.2f}"
    assert link.mic == []  # announced, not forced: the caller mutes with *6


async def first_answer(gw: Any, tmp_path: Path) -> str:
    """The gateway's 200 OK to one INVITE, as SIPp received it (the call is left to
    time out: SIPp sends nothing after the answer)."""
    answered_only = (
        scenarios._HEAD
        + '<scenario name="answer only">\n'
        + scenarios._INVITE
        + scenarios._ANSWERED
        + "</scenario>\n"
    )
    xml = scenarios.write(tmp_path / "answer.xml", answered_only)
    trace = tmp_path / "messages.log"
    extra = ["-trace_msg", "-message_file", str(trace)]
    await asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 20, extra)
    text = trace.read_text(errors="replace")
    return text[text.index("SIP/2.0 200 OK") :]


async def test_allow_lists_only_what_the_gateway_handles(
    start_gateway: Any, tmp_path: Path
) -> None:
    """pjsua would list MESSAGE, SUBSCRIBE, NOTIFY and REFER, which the gateway refuses
    or ignores; its answers list only the methods it handles."""
    gw = await start_gateway()
    answer = await first_answer(gw, tmp_path)
    allow = next(line for line in answer.splitlines() if line.lower().startswith("allow:"))
    methods = {m.strip() for m in allow.split(":", 1)[1].split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"} <= methods, allow
    assert methods <= set(HANDLED), allow
    assert gw.alive()


async def test_behind_nat_the_answer_names_the_public_address(
    start_gateway: Any, tmp_path: Path
) -> None:
    """With `public_address` (a router forwards SIP and RTP), the gateway's 200 OK names
    it in Contact and in the SDP's connection line, never the address it listens on."""
    public = "192.0.2.9"
    gw = await start_gateway(public_address=public)
    answer = await first_answer(gw, tmp_path)
    assert f"c=IN IP4 {public}" in answer, answer[:1500]
    contact = next(line for line in answer.splitlines() if line.lower().startswith("contact:"))
    assert public in contact and "127.0.0.1" not in contact, contact
    assert gw.alive()
