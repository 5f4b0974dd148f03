"""Bad input on the signalling socket: clear errors with stable codes, nothing lost.

Every test talks to a real server process over a real WebSocket.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from protocol_steps import Connect, knock, leader_with_room, login

from app.client import KreisClient


async def still_alive(client: KreisClient) -> None:
    assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"


async def test_hello_must_come_first(kreis_server: Any) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(kreis_server.ws_url) as ws:
        await ws.send_json({"type": "join", "room": "abend-runde", "name": "X"})
        reply = await ws.receive_json(timeout=5)
        assert reply["code"] == "not_ready"
        await ws.send_json({"type": "hello", "version": 2})
        assert (await ws.receive_json(timeout=5))["code"] == "bad_version"
        await ws.send_json({"type": "hello", "version": 1})
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["version"] == 1
        # No public STUN server is ever handed out.
        assert hello["ice_servers"] == []


async def test_malformed_messages_get_stable_codes(connect: Connect) -> None:
    client = await connect()
    cases = [
        ("not json at all", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ('"a string"', "bad_json"),
        ("{}", "bad_message"),
        ('{"type": 42}', "bad_message"),
        ('{"type": "fly-to-the-moon"}', "unknown_type"),
        ('{"type": "join", "room": 7, "name": "x"}', "bad_message"),
        ('{"type": "join", "name": "x"}', "bad_message"),
        ('{"type": "hand", "raised": "yes"}', "bad_message"),
        ('{"type": "chat", "text": ""}', "bad_message"),
        ('{"type": "chat", "text": "' + "x" * 2001 + '"}', "bad_message"),
        ('{"type": "up_offer", "sdp": "v=0", "tracks": [{"mid": "0", "kind": "smell", '
         '"source": "mic"}]}', "bad_message"),
    ]  # fmt: skip
    for text, code in cases:
        await client.send_raw(text)
        reply = await client.expect("error")
        assert reply["code"] == code, (text[:60], reply)
        assert reply["message"], "every error carries a sentence for a person"
    await still_alive(client)


async def test_deeply_nested_json(connect: Connect) -> None:
    client = await connect()
    nested = '{"type": "chat", "text": "x", "to": ' + "[" * 40 + "]" * 40 + "}"
    await client.send_raw(nested)
    assert (await client.expect("error"))["code"] == "too_deep"
    await client.send_raw("[" * 30000 + "]" * 30000)  # under the frame limit
    assert (await client.expect("error"))["code"] in ("bad_json", "too_deep")
    await still_alive(client)


async def test_huge_frame_closes_connection(connect: Connect) -> None:
    client = await connect()
    await client.send_raw(json.dumps({"type": "chat", "text": "x" * 200_000}))
    await client.closed.wait()
    assert client.close_code == 1009


async def test_flood_closes_connection(connect: Connect) -> None:
    client = await connect()
    for _ in range(400):
        if client.closed.is_set():
            break
        await client.send_raw('{"type": "ping"}')
    await client.closed.wait()
    assert client.close_code == 1008


async def test_errors_in_german(connect: Connect) -> None:
    client = await connect(lang="de")
    await client.send_raw("{")
    reply = await client.expect("error")
    assert reply["code"] == "bad_json"
    assert "Nachricht" in reply["message"]


async def test_forged_fields_are_rejected(connect: Connect, kreis_server: Any) -> None:
    """Identity and role come from the connection, never from a message."""
    slug = "forged-fields-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    guest = await knock(connect, slug, "Gast")
    for forged in (
        {"type": "join", "room": slug, "name": "X", "role": "leader"},
        {"type": "chat", "text": "hi", "from": "p_someone-else"},
        {"type": "hand", "raised": True, "id": "p_someone-else"},
        {"type": "admit", "room": slug, "id": "p_x", "group": kreis_server.group},
    ):
        await guest.send(forged)
        assert (await guest.expect("error"))["code"] == "bad_message", forged
    # Still only in the lobby, and the leader's queue still shows the guest.
    await guest.send({"type": "hand", "raised": True})
    assert (await guest.expect("error"))["code"] == "not_admitted"
    queue = leader.latest("lobby_queue")
    assert queue is not None and [e["name"] for e in queue["entrants"]] == ["Gast"]


async def test_names_are_cleaned_and_kept_as_text(connect: Connect, kreis_server: Any) -> None:
    slug = "namen-test-42"
    leader = await leader_with_room(connect, kreis_server, slug)
    raw = "  <script>alert(1)</script>\u0000\u202e  Max\t\n "
    await knock(connect, slug, raw)
    queue = await leader.expect("lobby_queue")
    while not queue["entrants"]:
        queue = await leader.expect("lobby_queue")
    name = queue["entrants"][0]["name"]
    # Control and bidi-override characters are gone, spaces collapsed, markup kept
    # verbatim as text: clients render it with textContent, never as HTML.
    assert name == "<script>alert(1)</script> Max"
    guest = await connect()
    await guest.send({"type": "join", "room": slug, "name": "\u0000\u200b \t"})
    assert (await guest.expect("error"))["code"] == "bad_name"
    await guest.send({"type": "join", "room": slug, "name": "x" * 41})
    assert (await guest.expect("error"))["code"] == "bad_name"


async def test_wrong_group_password_is_rate_limited(connect: Connect, kreis_server: Any) -> None:
    client = await connect(address="198.51.100.7")
    for _ in range(5):
        await client.send({"type": "login", "group": kreis_server.group, "password": "wrong-one"})
        assert (await client.expect("error"))["code"] == "bad_credentials"
    # Past the limit even the right password is refused, with a time to wait.
    await client.send(
        {"type": "login", "group": kreis_server.group, "password": kreis_server.password}
    )
    reply = await client.expect("error")
    assert reply["code"] == "rate_limited" and reply["retry_after"] > 0
    # The same address on a new connection is limited too; another address is not.
    again = await connect(address="198.51.100.7")
    await again.send({"type": "login", "group": kreis_server.group, "password": "x"})
    assert (await again.expect("error"))["code"] == "rate_limited"
    other = await connect(address="198.51.100.8")
    await login(other, kreis_server)


async def test_unknown_group_looks_like_wrong_password(connect: Connect) -> None:
    client = await connect()
    await client.send({"type": "login", "group": "gibt-es-nicht", "password": "irgendwas"})
    assert (await client.expect("error"))["code"] == "bad_credentials"


async def test_slug_rules(connect: Connect, kreis_server: Any) -> None:
    leader = await connect(kind="console")
    await login(leader, kreis_server)
    for slug, code in [
        ("ab", "bad_slug"),
        ("Gross-Buchstaben", "bad_slug"),
        ("-vorne", "bad_slug"),
        ("leer zeichen", "bad_slug"),
        ("x" * 65, "bad_slug"),
        ("static", "reserved_slug"),
        ("healthz", "reserved_slug"),
    ]:
        await leader.send({"type": "create_room", "slug": slug})
        assert (await leader.expect("error"))["code"] == code, slug
    check = await leader.request({"type": "check_slug", "slug": "test"}, "slug_check")
    assert check["ok"] and check["warning"] == "guessable" and check["suggestion"]
    check = await leader.request({"type": "check_slug", "slug": "xq7"}, "slug_check")
    assert check["ok"] and check["warning"] == "short" and check["suggestion"]
    created = await leader.request({"type": "create_room", "slug": "xq7"}, "room_created")
    assert created["warning"] == "short" and "/xq7?k=" in created["url"]
    await leader.send({"type": "create_room", "slug": "xq7"})
    assert (await leader.expect("error"))["code"] == "room_exists"
    check = await leader.request({"type": "check_slug", "slug": "ruhige-tanne-5521"}, "slug_check")
    assert check == {**check, "ok": True, "warning": None, "suggestion": None}
