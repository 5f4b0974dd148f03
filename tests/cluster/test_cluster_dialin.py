"""A phone caller reaches a room on another node by its PIN, through the real gateway.

Three real `kreis serve` nodes on a real Redis; a room with its lobby and dial-in on
lives on one of them (B). The gateway (`kreis dial-in`, its own process) knows only
another node (A) and a baresip phone calls it. A holds no room with that PIN: its relay
(app/cluster/relay.py) finds the PIN's owner in Redis and forwards the caller's
signalling to B over a link, while the call's media goes straight between the gateway
and B's SFU. The caller first types a wrong PIN (answered by A, which owns no such room
and counts the try), then the right one; it knocks in B's lobby, a leader signed in on
B admits it, and the phone's 440 Hz tone is measured (FFT) in what a participant on B
receives, the participant's 1 kHz in what the phone hears.

The wrong PIN must still count against the caller's lockout (`[gateway] caller_tries`
= 3): the same number calls again and is locked at its second wrong PIN, the third
failure overall, instead of being asked again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aioice.ice
import pytest
from cluster_nodes import room_count
from kreis_server import GATEWAY_SECRET, GROUP, PASSWORD, KreisServer

from app.client import KreisClient
from app.cluster.node import QUICK_SECONDS
from app.participant import PatternTrack, tone_track
from app.participant import RoomParticipant as Participant
from tests.sipgw.participant import RoomParticipant, wait_entrant
from tests.sipgw.phones import RATE, BaresipPhone, DialInCommand, free_sip_port, tone_level
from tests.sipgw.phones import tone_ratio as phone_tone_ratio

pytestmark = [pytest.mark.cluster, pytest.mark.sip, pytest.mark.timeout(150)]

ROOMS = {"empty_timeout_seconds": 30}
"""This module's nodes (conftest.py `nodes`): an empty room lives 30 s, a phone knocks later."""
SLUG = "fernsprech-runde"
NUMBER = "0301234547"
WRONG_PINS = ("918273645", "546372819", "102938475")


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves loopback out of its candidates; the test namespace has nothing else
    (for the in-test participant; the gateway process patches itself, DialInCommand)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def console(node: KreisServer) -> KreisClient:
    client = KreisClient(node.url, kind="console")
    await client.connect()
    await client.request({"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok")
    return client


async def room_with_dial_in(nodes: list[KreisServer], slug: str) -> tuple[KreisClient, int, str]:
    """Starts `slug` (lobby and dial-in on) from a console on node 0; returns the
    console, the index of the node that owns the room (placed by load) and its PIN."""
    creator = await console(nodes[0])
    before = [room_count(n) for n in nodes]
    msg = {"type": "create_room", "slug": slug, "lobby": True, "password": None}
    await creator.request({**msg, "dial_in": True}, "room_created")
    state = await creator.expect("room_state")
    while state.get("room") != slug or not state.get("dial_in_pin"):
        state = await creator.expect("room_state")
    grown = [room_count(n) - b for n, b in zip(nodes, before, strict=True)]
    assert grown.count(1) == 1, grown
    # The owner writes a new PIN to Redis within its quick check (QUICK_SECONDS, 0.5 s);
    # a caller a human reads the PIN to is never faster than that.
    await asyncio.sleep(2 * QUICK_SECONDS)
    return creator, grown.index(1), str(state["dial_in_pin"])


def free_rtp_port() -> int:
    return 42000 + free_sip_port() % 8000


async def test_a_caller_reaches_a_room_on_another_node_by_its_pin(
    nodes: list[KreisServer], tmp_path: Path
) -> None:
    phone = BaresipPhone(tmp_path / "phone", NUMBER, 440)
    creator: KreisClient | None = None
    leader: KreisClient | None = None
    guest: RoomParticipant | None = None
    gateway: DialInCommand | None = None
    try:
        creator, owner, pin = await room_with_dial_in(nodes, SLUG)
        entry = (owner + 1) % 3  # the only node the gateway knows: not the owner
        print(f"room on node {owner}, gateway on node {entry}")
        gateway = DialInCommand(
            tmp_path / "dial-in",
            nodes[entry].ws_url,
            secret=GATEWAY_SECRET,
            rtp_port=free_rtp_port(),
        )
        # The leader and a participant playing 1 kHz, both on the owner (B).
        leader = await console(nodes[owner])
        await leader.request({"type": "watch", "room": SLUG}, "room_state")
        guest = RoomParticipant(nodes[owner].url, SLUG, "Gast", 1000)
        await guest.join(leader)
        await gateway.wait_log("dial-in gateway ready", timeout=60)
        await asyncio.to_thread(phone.start)

        # Call 1: a wrong PIN (A answers it), then the right one (A relays it to B).
        phone.dial(gateway.uri)
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10)
        await asyncio.sleep(1.0)
        wrong = [w for w in WRONG_PINS if w != pin]
        await asyncio.to_thread(phone.digits, wrong[0] + "#", 0.2)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(phone.digits, pin + "#", 0.2)
        entrant = await wait_entrant(leader, SLUG, "Telefon", timeout=15)
        assert entrant["kind"] == "phone" and entrant["name"] == "Telefon …47", entrant
        await leader.send({"type": "admit", "room": SLUG, "id": entrant["id"]})
        admitted = time.monotonic()
        await asyncio.sleep(7)
        in_call = time.monotonic() - admitted
        room_heard = guest.heard_since(admitted + 2.0)
        phone.hangup()
        assert await asyncio.to_thread(phone.wait_for, "terminated", 10)
        heard = phone.heard()
        meeting = heard[-int((in_call - 2.5) * RATE) :] if len(heard) else heard
        print(
            f"room hears 440 Hz at {tone_level(room_heard, 440):.0f} "
            f"(ratio {phone_tone_ratio(room_heard, 440):.1f}, {len(room_heard) / RATE:.1f} s); "
            f"phone hears 1 kHz at {tone_level(meeting, 1000):.0f}"
        )
        assert len(room_heard) > 2 * RATE, "the room received no audio from the caller"
        assert tone_level(room_heard, 440) > 1000, "the caller's tone did not reach the room"
        assert phone_tone_ratio(room_heard, 440) > 8
        assert tone_level(meeting, 1000) > 1000, "the room's tone did not reach the caller"

        # Call 2, the same number: two more wrong PINs make three, and the second is
        # answered with the lockout, not with another prompt.
        mark = len(phone.output())
        phone.dial(gateway.uri)
        assert await asyncio.to_thread(phone.wait_for, "Call established", 10, mark)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(phone.digits, wrong[1] + "#", 0.2)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(phone.digits, wrong[2] + "#", 0.2)
        await gateway.wait_log("finished: locked", timeout=20)
        assert gateway.count("finished: locked") == 1
        # The leader saw exactly one phone knock: the right PIN's.
        for msg in leader.drain("lobby_queue"):
            phones = [e for e in msg["entrants"] if e.get("kind") == "phone"]
            assert all(e["id"] == entrant["id"] for e in phones), msg
    finally:
        await asyncio.to_thread(phone.stop)
        for client in (guest, leader):
            if client is not None:
                await client.close()
        if creator is not None:
            await creator.send({"type": "end_room", "room": SLUG})
            await creator.close()
        code = gateway.stop() if gateway is not None else 0
    assert code == 0, gateway.log()[-3000:] if gateway is not None else ""


async def test_an_audio_only_gateway_gets_no_video_from_another_node(
    nodes: list[KreisServer],
) -> None:
    """The gateway says `receive: audio` before its `dial_in`, to the node it knows; the
    room's owner must hear it too (the relay replays it on the link), or it offers the
    phone's connection every camera of the room."""
    slug = "fernsprech-kamera"
    creator, owner, pin = await room_with_dial_in(nodes, slug)
    leader = await console(nodes[owner])
    camera = Participant(KreisClient(nodes[owner].url, kind="browser"), audio_only=False)
    gateway = KreisClient(nodes[(owner + 1) % 3].url, kind="gateway")
    try:
        await leader.request({"type": "watch", "room": slug}, "room_state")
        await camera.client.connect()
        await camera.start()
        await camera.client.send({"type": "join", "room": slug, "name": "Kamera"})
        knock = await wait_entrant(leader, slug, "Kamera")
        await leader.send({"type": "admit", "room": slug, "id": knock["id"]})
        await camera.client.expect("joined", timeout=10)
        await camera.publish([(PatternTrack(), "camera"), (tone_track(1000), "mic")])

        await gateway.connect()
        await gateway.request({"type": "gateway_auth", "secret": GATEWAY_SECRET}, "gateway_ok")
        await gateway.send({"type": "receive", "kinds": ["audio"]})
        await gateway.send({"type": "dial_in", "pin": pin, "caller": "…47"})
        assert (await gateway.expect("lobby_status", timeout=10))["state"] == "waiting"
        entrant = await wait_entrant(leader, slug, "Telefon")
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await gateway.expect("joined", timeout=10)
        offer = await gateway.expect("down_offer", timeout=10)
        kinds = sorted(str(t["kind"]) for t in offer["tracks"])
        print("tracks offered to the gateway:", kinds)
        assert kinds == ["audio"], kinds
        assert "m=video" not in offer["sdp"]
    finally:
        await gateway.close()
        await camera.close()
        await camera.client.close()
        await leader.close()
        await creator.send({"type": "end_room", "room": slug})
        await creator.close()
