"""Two callers in two real rooms at once stay separate, and one hanging up spares the other.

Everything is real: the `kreis serve` process, the gateway (pjsua2 + WebSocket +
aiortc), two baresip phones (440 Hz and 660 Hz) dialling at the same time with their
rooms' two PINs (RFC 4733), one leader per room admitting its caller, and one aiortc
participant per room (1000 Hz in room A, 1500 Hz in room B). Each side must hear its own room only,
measured with an FFT at all four frequencies.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from sipgw.roomlink import ServerLink
from tests.sipgw.participant import RoomParticipant, leader_session, wait_entrant
from tests.sipgw.phones import RATE, hears

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]

SLUG_A = "zwei-raeume-a"
SLUG_B = "zwei-raeume-b"
PHONE_A, PHONE_B = 440.0, 660.0  # what each caller sends
GUEST_A, GUEST_B = 1000.0, 1500.0  # what each room's participant sends


def window(pcm: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return pcm[int(t0 * RATE) : int(t1 * RATE)]


def phones_in(leader: Any, slug: str) -> list[str]:
    """Names of the phone participants in the leader's latest `participants` list."""
    msg = leader.latest("participants")
    assert msg is not None and msg["room"] == slug, msg
    return [str(e["name"]) for e in msg["participants"] if e.get("kind") == "phone"]


async def test_two_callers_in_two_real_rooms_stay_separate(
    kreis_server: Any, start_gateway: Any, phones: Any
) -> None:
    url = kreis_server.url
    leader_a, pin_a = await leader_session(url, kreis_server.group, kreis_server.password, SLUG_A)
    leader_b, pin_b = await leader_session(url, kreis_server.group, kreis_server.password, SLUG_B)
    assert pin_a != pin_b
    guest_a = RoomParticipant(url, SLUG_A, "Gast A", GUEST_A)
    guest_b = RoomParticipant(url, SLUG_B, "Gast B", GUEST_B)
    try:
        await guest_a.join(leader_a)
        await guest_b.join(leader_b)
        gw = await start_gateway(
            link_factory=lambda: ServerLink(kreis_server.ws_url, kreis_server.gateway_secret),
            server_url=kreis_server.ws_url,
        )
        a = phones("a", number="030111111", tone_hz=PHONE_A)
        b = phones("b", number="030222222", tone_hz=PHONE_B)
        a.dial(gw.uri)
        b.dial(gw.uri)
        established = await asyncio.gather(
            asyncio.to_thread(a.wait_for, "Call established", 10),
            asyncio.to_thread(b.wait_for, "Call established", 10),
        )
        assert all(established), established
        t_call = time.monotonic()
        await asyncio.sleep(1.0)
        await asyncio.gather(
            asyncio.to_thread(a.digits, pin_a + "#", 0.22),
            asyncio.to_thread(b.digits, pin_b + "#", 0.22),
        )
        entrant_a, entrant_b = await asyncio.gather(
            wait_entrant(leader_a, SLUG_A, "Telefon"), wait_entrant(leader_b, SLUG_B, "Telefon")
        )
        # Each PIN led to its own room's lobby.
        assert entrant_a["name"] == "Telefon …11", entrant_a
        assert entrant_b["name"] == "Telefon …22", entrant_b
        await asyncio.gather(
            leader_a.send({"type": "admit", "room": SLUG_A, "id": entrant_a["id"]}),
            leader_b.send({"type": "admit", "room": SLUG_B, "id": entrant_b["id"]}),
        )
        admitted = time.monotonic()
        t_admit = admitted - t_call
        await asyncio.sleep(8)
        both_end = time.monotonic()
        room_a = guest_a.heard_since(admitted + 2.0)
        room_b = guest_b.heard_since(admitted + 2.0)
        assert phones_in(leader_a, SLUG_A) == ["Telefon …11"]
        assert phones_in(leader_b, SLUG_B) == ["Telefon …22"]

        # Caller A hangs up; caller B's call goes on.
        a.hangup()
        assert await asyncio.to_thread(a.wait_for, "terminated", 10)
        hung_up = time.monotonic()
        t_hangup = hung_up - t_call
        await asyncio.sleep(5)
        t_end = time.monotonic() - t_call
        room_b_after = guest_b.heard_since(hung_up + 0.5)
        # Room A lost its phone; room B still has its own.
        assert phones_in(leader_a, SLUG_A) == []
        assert phones_in(leader_b, SLUG_B) == ["Telefon …22"]
        b.hangup()
        assert await asyncio.to_thread(b.wait_for, "terminated", 10)
    finally:
        await guest_a.close()
        await guest_b.close()
        await leader_a.close()
        await leader_b.close()
    assert gw.alive()

    # The rooms: each participant hears its own caller only.
    hears(room_a, PHONE_A, PHONE_B, "room A while both call")
    hears(room_b, PHONE_B, PHONE_A, "room B while both call")
    hears(room_b_after, PHONE_B, PHONE_A, "room B after A hung up")

    # The phones: each caller hears its own room's participant only.
    both = both_end - t_call
    hears(window(a.heard(), t_admit + 2.0, both), GUEST_A, GUEST_B, "phone A")
    hears(window(b.heard(), t_admit + 2.0, both), GUEST_B, GUEST_A, "phone B")
    hears(
        window(b.heard(), t_hangup + 0.5, t_end - 0.2), GUEST_B, GUEST_A, "phone B after A hung up"
    )
