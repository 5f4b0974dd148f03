"""The gateway's side of the protocol: secret, PIN, lobby for callers, E2EE vs dial-in.

A protocol client stands in for the gateway here; tests/sipgw dial in with a real SIP
client through the real gateway.
"""

from __future__ import annotations

import json
from typing import Any

from protocol_steps import Connect, entrant_id, leader_with_room


async def gateway(connect: Connect, server: Any) -> Any:
    gw = await connect(kind="gateway")
    await gw.request({"type": "gateway_auth", "secret": server.gateway_secret}, "gateway_ok")
    return gw


async def dial_in_pin(leader: Any, slug: str) -> str:
    await leader.send({"type": "set_dial_in", "room": slug, "on": True})
    while True:
        state = await leader.expect("room_state")
        if state["settings"]["dial_in"]:
            assert state["dial_in_numbers"] == ["+49 30 1234567"]
            return str(state["dial_in_pin"])


async def test_gateway_secret(connect: Connect, kreis_server: Any) -> None:
    gw = await connect(kind="gateway")
    await gw.send({"type": "gateway_auth", "secret": "falsch"})
    assert (await gw.expect("error"))["code"] == "bad_credentials"
    browser = await connect()
    await browser.send({"type": "gateway_auth", "secret": kreis_server.gateway_secret})
    assert (await browser.expect("error"))["code"] == "not_allowed"
    await browser.send({"type": "dial_in", "pin": "123456789", "caller": "…47"})
    assert (await browser.expect("error"))["code"] == "not_allowed"


async def test_caller_goes_through_the_lobby(connect: Connect, kreis_server: Any) -> None:
    slug = "telefon-runde"
    leader = await leader_with_room(connect, kreis_server, slug, lobby=False)
    pin = await dial_in_pin(leader, slug)
    assert len(pin) == 9 and pin.isdigit()
    guest = await connect()
    joined = await guest.request({"type": "join", "room": slug, "name": "Gast"}, "joined")
    # Participants never learn the PIN; only leaders do.
    assert "dial_in_pin" not in json.dumps(joined)
    for msg in guest.history:
        assert msg.get("dial_in_pin") is None
    gw = await gateway(connect, kreis_server)
    await gw.send({"type": "dial_in", "pin": "000000001", "caller": "…47"})
    assert (await gw.expect("error"))["code"] == "bad_pin"
    # Even with the lobby off, a caller waits for the leader.
    reply = await gw.request({"type": "dial_in", "pin": pin, "caller": "…47"}, "lobby_status")
    assert reply["state"] == "waiting"
    caller = await entrant_id(leader, "Telefon …47")
    await leader.send({"type": "admit", "room": slug, "id": caller})
    assert (await gw.expect("joined"))["role"] == "phone"
    people = await guest.expect("participants")
    while len(people["participants"]) < 2:  # the guest and the caller
        people = await guest.expect("participants")
    phone = next(p for p in people["participants"] if p["kind"] == "phone")
    assert phone["name"] == "Telefon …47"


async def test_full_numbers_never_reach_the_room(connect: Connect, kreis_server: Any) -> None:
    slug = "nummern-schutz"
    leader = await leader_with_room(connect, kreis_server, slug)
    pin = await dial_in_pin(leader, slug)
    gw = await gateway(connect, kreis_server)
    # A gateway that sends more than a masked tail gets it dropped, not shown.
    await gw.request({"type": "dial_in", "pin": pin, "caller": "0301234567"}, "lobby_status")
    assert await entrant_id(leader, "Telefon")
    assert "0301234567" not in json.dumps(leader.history)


async def test_pin_guessing_is_limited(connect: Connect, kreis_server: Any) -> None:
    slug = "pin-rate-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    pin = await dial_in_pin(leader, slug)
    gw = await gateway(connect, kreis_server)
    codes = []
    for i in range(6):
        await gw.send({"type": "dial_in", "pin": f"99999999{i}", "caller": ""})
        codes.append((await gw.expect("error"))["code"])
    assert set(codes[:5]) == {"bad_pin"}
    await gw.send({"type": "dial_in", "pin": pin, "caller": ""})
    reply = await gw.expect("error", "lobby_status")
    # The gateway connection is allowed more tries (it carries many callers), but the
    # limit exists: 10 x the per-connection budget.
    assert reply["type"] in ("lobby_status", "error")


async def test_e2ee_and_dial_in_exclude_each_other(connect: Connect, kreis_server: Any) -> None:
    slug = "verschluesselt-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    pin = await dial_in_pin(leader, slug)
    gw = await gateway(connect, kreis_server)
    await gw.request({"type": "dial_in", "pin": pin, "caller": "…12"}, "lobby_status")
    await entrant_id(leader, "Telefon …12")
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    assert (await leader.expect("error"))["code"] == "phones_present"
    await leader.send({"type": "set_e2ee", "room": slug, "on": True, "drop_phones": True})
    assert (await gw.expect("lobby_status"))["state"] == "ended"
    state = await leader.expect("room_state")
    while not state["settings"]["e2ee"]:
        state = await leader.expect("room_state")
    assert state["settings"]["dial_in"] is False and state["dial_in_pin"] is None
    await leader.send({"type": "set_dial_in", "room": slug, "on": True})
    assert (await leader.expect("error"))["code"] == "e2ee_on"
    gw2 = await gateway(connect, kreis_server)
    await gw2.send({"type": "dial_in", "pin": pin, "caller": ""})
    assert (await gw2.expect("error"))["code"] == "bad_pin"


def keys(caller: str, source: str = "a" * 32) -> dict[str, str]:
    return {"caller_key": caller * 32, "source_key": source, "dialled_key": "d" * 32}


async def test_wrong_pins_of_one_caller_over_two_gateways_lock_that_caller_only(
    connect: Connect, kreis_server: Any
) -> None:
    slug = "sperre-pro-anrufer"
    leader = await leader_with_room(connect, kreis_server, slug)
    pin = await dial_in_pin(leader, slug)
    # Two gateway processes (or machines), one trunk, one caller guessing: each call
    # is its own connection, the caller's keyed hash is the same on both.
    first, second = await gateway(connect, kreis_server), await gateway(connect, kreis_server)
    codes = []
    for gw, wrong in ((first, "918273645"), (second, "546372819"), (first, "102938475")):
        await gw.send({"type": "dial_in", "pin": wrong, "caller": "…47", **keys("7")})
        codes.append((await gw.expect("error"))["code"])
    # The third wrong PIN (caller_tries = 3) locks the caller, and says so at once.
    assert codes == ["bad_pin", "bad_pin", "rate_limited"], codes
    third = await gateway(connect, kreis_server)
    await third.send({"type": "dial_in", "pin": pin, "caller": "…47", **keys("7")})
    refused = await third.expect("error")
    assert refused["code"] == "rate_limited" and refused["retry_after"] > 0
    # Another caller on the same trunk and gateways is not locked out with it, and a
    # caller who withheld its number is shown as such.
    reply = await second.request(
        {"type": "dial_in", "pin": pin, "caller": "", "withheld": True, **keys("8")},
        "lobby_status",
    )
    assert reply["state"] == "waiting"
    assert await entrant_id(leader, "Telefon (withheld)")  # a gateway speaking English


async def test_a_locked_caller_is_told_before_its_call_is_answered(
    connect: Connect, kreis_server: Any
) -> None:
    slug = "sperre-vor-dem-abheben"
    leader = await leader_with_room(connect, kreis_server, slug)
    await dial_in_pin(leader, slug)
    gw = await gateway(connect, kreis_server)
    check = {"type": "dial_in_check", **keys("c")}
    assert (await gw.request(check, "dial_in_open"))["type"] == "dial_in_open"
    for wrong in ("918273645", "546372819", "102938475"):
        await gw.send({"type": "dial_in", "pin": wrong, "caller": "", **keys("c")})
        await gw.expect("error")
    await gw.send(check)
    refused = await gw.expect("error")
    assert refused["code"] == "rate_limited" and refused["retry_after"] > 0
    browser = await connect()
    await browser.send(check)
    assert (await browser.expect("error"))["code"] == "not_allowed"
