"""A real phone call through the gateway into a real Kreis room, and audio both ways.

Everything is real here: the `kreis serve` process (lobby, PIN, SFU), the gateway
(pjsua2 + WebSocket + aiortc), a baresip phone playing 440 Hz, a leader protocol
client, and an aiortc participant playing 1 kHz. Audio is measured with an FFT at the
two frequencies, from what the phone recorded and what the participant received.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sipgw.roomlink import ServerLink
from tests.sipgw import sipp_scenarios as scenarios
from tests.sipgw.participant import RoomParticipant, leader_session, wait_entrant
from tests.sipgw.phones import RATE, run_sipp, tone_level, tone_ratio

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

LONG_NAME = "Erika Musterfrau " * 17 + "Ende"
"""A 293-character display name: pjsua's remoteUri cut such a From off, number and all."""


async def wait_phone_entry(
    leader: Any, check: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    """The phone's entry in a `participants` list once `check` holds for it."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        msg = await leader.expect("participants", timeout=left)
        for entry in msg["participants"]:
            if entry.get("kind") == "phone" and check(entry):
                return dict(entry)
    raise AssertionError("the phone's state never showed in the room")


def window(pcm: Any, t0: float, t1: float) -> Any:
    return pcm[int(t0 * RATE) : int(t1 * RATE)]


async def test_caller_joins_a_real_room_through_the_lobby_and_both_sides_hear(
    kreis_server: Any, start_gateway: Any, phones: Any
) -> None:
    slug = "telefon-runde-dienstag"
    leader, pin = await leader_session(
        kreis_server.url, kreis_server.group, kreis_server.password, slug
    )
    guest = RoomParticipant(kreis_server.url, slug, "Gast", 1000)
    try:
        await guest.join(leader)
        gw = await start_gateway(
            link_factory=lambda: ServerLink(kreis_server.ws_url, kreis_server.gateway_secret),
            server_url=kreis_server.ws_url,
        )
        phone = phones("caller", number="0301234547", tone_hz=440, display_name=LONG_NAME)
        phone.dial(gw.uri)
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
        t_call = time.monotonic()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.digits, pin + "#", 0.22)
        entrant = await wait_entrant(leader, slug, "Telefon")
        assert entrant["name"] == "Telefon …47"
        assert entrant["kind"] == "phone"
        t_lobby = time.monotonic() - t_call
        await asyncio.sleep(6)  # in the lobby: the room plays 1 kHz, the caller 440 Hz
        lobby_end = time.monotonic()
        assert tone_level(guest.heard_since(t_call + t_lobby), 440) < 30, "caller heard early"
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        t_admit = lobby_end - t_call
        await asyncio.sleep(7)
        t_end = time.monotonic() - t_call
        room_heard = guest.heard_since(lobby_end + 2.0)
        # *6 mutes and *9 raises the hand: the room sees both on the phone's entry.
        await asyncio.to_thread(phone.digits, "*6*9", 0.3)
        phone_entry = await wait_phone_entry(
            leader, lambda e: e.get("mic") is False and e.get("hand") is True
        )
        assert phone_entry["name"] == "Telefon …47"
        phone.hangup()
        assert await asyncio.to_thread(phone.wait_for, "terminated", 10)
    finally:
        await guest.close()
        await leader.close()
    heard = phone.heard()
    lobby = window(heard, t_lobby + 0.5, t_admit - 0.2)
    meeting = window(heard, t_admit + 2.0, t_end - 0.2)
    assert tone_ratio(lobby, 1000) < 4, "room audio reached a caller in the lobby"
    assert tone_level(meeting, 1000) > 1000, "room audio did not reach the admitted caller"
    assert tone_ratio(meeting, 1000) > 8
    assert tone_ratio(meeting, 440) < 4, "the caller hears their own voice"
    assert len(room_heard) > 2 * RATE, "the participant received no audio from the caller"
    assert tone_level(room_heard, 440) > 1000, "the caller's voice did not reach the room"
    assert tone_ratio(room_heard, 440) > 8
    # Levels both ways, against what was sent: both tones are sines at 0.3 of full scale.
    sent = 0.3 * 32767 / np.sqrt(2)
    to_phone = 20 * np.log10(tone_level(meeting, 1000) / sent)
    to_room = 20 * np.log10(tone_level(room_heard, 440) / sent)
    print(f"level room -> phone {to_phone:+.1f} dB, phone -> room {to_room:+.1f} dB")
    assert abs(to_phone) <= 2.0, f"the phone hears the room at {to_phone:+.1f} dB"
    assert abs(to_room) <= 2.0, f"the room hears the phone at {to_room:+.1f} dB"


async def test_wrong_pins_at_a_real_server_end_the_call_and_reach_no_lobby(
    kreis_server: Any, start_gateway: Any, phones: Any
) -> None:
    slug = "telefon-falsche-pin"
    leader, pin = await leader_session(
        kreis_server.url, kreis_server.group, kreis_server.password, slug
    )
    try:
        gw = await start_gateway(
            link_factory=lambda: ServerLink(kreis_server.ws_url, kreis_server.gateway_secret),
            server_url=kreis_server.ws_url,
        )
        phone = phones("guesser", number="0307777777", display_name=LONG_NAME)
        phone.dial(gw.uri)
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
        await asyncio.sleep(0.3)
        wrong = [p for p in ("918273645", "546372819", "102938475") if p != pin]
        for attempt in wrong[:3]:
            await asyncio.to_thread(phone.digits, attempt + "#", 0.2)
            await asyncio.sleep(1.0)
        assert await asyncio.to_thread(phone.wait_for, "terminated", 20)
        # The same number (behind the same long name) calls again: the server still
        # holds the number's lock, so it never reaches the PIN prompt or the lobby.
        # It hears why as early media and gets a 403, never a 200.
        mark = len(phone.output())
        phone.dial(gw.uri)
        ended = await asyncio.to_thread(phone.wait_for, "session closed: 403", 25, mark)
        later = phone.output()[mark:]
        assert ended and "Call established" not in later, later[-1500:]
        # The leader never saw anybody knock.
        for msg in leader.drain("lobby_queue"):
            assert not msg["entrants"], msg
    finally:
        await leader.close()
    assert gw.alive()
    gw.stop.set()
    gateway = await asyncio.wait_for(gw.task, 20)
    # The third wrong PIN locks this caller's number out (caller_tries = 3), and the
    # lock holds for its next call.
    assert gateway.stats.outcomes == {"locked": 2}, gateway.stats.outcomes


async def test_a_caller_that_goes_silent_is_hung_up_and_leaves_the_room(
    kreis_server: Any, start_gateway: Any, tmp_path: Path
) -> None:
    """No RTP and no BYE after admission: the gateway hangs up (its BYE reaches the
    phone) and the caller leaves the room within 30 s."""
    if not shutil.which("sipp"):
        pytest.skip("sipp is not installed")
    slug = "telefon-verschwunden"
    leader, pin = await leader_session(
        kreis_server.url, kreis_server.group, kreis_server.password, slug
    )
    try:
        gw = await start_gateway(
            link_factory=lambda: ServerLink(kreis_server.ws_url, kreis_server.gateway_secret),
            server_url=kreis_server.ws_url,
        )
        xml = scenarios.write(tmp_path / "silent.xml", scenarios.silent_after_pin(pin + "#"))
        call = asyncio.create_task(asyncio.to_thread(run_sipp, xml, gw.target, tmp_path, 60))
        entrant = await wait_entrant(leader, slug, "Telefon")
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await wait_phone_entry(leader, lambda e: True, timeout=10)
        admitted = time.monotonic()
        deadline = admitted + 30
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the silent caller is still in the room after 30 s"
            msg = await leader.expect("participants", timeout=left)
            if not any(e.get("kind") == "phone" for e in msg["participants"]):
                break
        gone = time.monotonic() - admitted
        print(f"silent caller left the room {gone:.1f} s after admission")
        result = await call
        assert result.returncode == 0, result.stdout.decode()[-2000:]  # it got the BYE
    finally:
        await leader.close()
