"""The lobby and the room password, end to end against a real server.

Attacks from the issue: acting before admission, admit from a non-leader, guessing the
room password, and a lobby entrant trying to learn the password or the participants.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from protocol_steps import (
    Connect,
    admitted_guest,
    entrant_id,
    knock,
    leader_with_room,
    login,
    settled,
)


async def test_guest_waits_for_leader_then_knocks(connect: Connect, kreis_server: Any) -> None:
    slug = "frueh-da-1234"
    early = await connect()
    invite = kreis_server.invite(slug)
    reply = await early.request(
        {"type": "join", "room": slug, "name": "Früh", "invite": invite}, "waiting_for_leader"
    )
    assert reply["room"] == slug
    leader = await leader_with_room(connect, kreis_server, slug)
    # The leader's arrival admits nobody: the early guest now knocks.
    assert (await early.expect("lobby_status"))["state"] == "waiting"
    assert await entrant_id(leader, "Früh")
    await settled(leader, early)
    assert early.latest("joined") is None


async def test_admit_and_deny(connect: Connect, kreis_server: Any) -> None:
    slug = "einlass-probe-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    anna, anna_id = await admitted_guest(connect, leader, slug, "Anna")
    people = await anna.expect("participants")
    assert [p["name"] for p in people["participants"]] == ["Anna"]
    bert = await knock(connect, slug, "Bert")
    bert_id = await entrant_id(leader, "Bert")
    await leader.send({"type": "deny", "room": slug, "id": bert_id})
    assert (await bert.expect("lobby_status"))["state"] == "denied"
    await asyncio.wait_for(bert.closed.wait(), 5)
    # Anna never saw Bert: lobby entrants are not in the participant list.
    for msg in anna.history:
        assert "Bert" not in json.dumps(msg)
    assert anna_id


async def test_admit_all(connect: Connect, kreis_server: Any) -> None:
    slug = "alle-rein-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    guests = [await knock(connect, slug, f"Gast {i}") for i in range(3)]
    for i in range(3):
        await entrant_id(leader, f"Gast {i}")
    await leader.send({"type": "admit_all", "room": slug})
    for guest in guests:
        assert (await guest.expect("joined"))["role"] == "guest"


async def test_before_admission_only_join_leave_and_lobby_chat(
    connect: Connect, kreis_server: Any
) -> None:
    slug = "nur-warten-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    await admitted_guest(connect, leader, slug, "Drin")
    waiting = await knock(connect, slug, "Draussen")
    entrant = await entrant_id(leader, "Draussen")
    for msg in (
        {"type": "up_offer", "sdp": "v=0\r\n", "tracks": []},
        {"type": "down_answer", "sdp": "v=0\r\n"},
        {"type": "keyframe", "participant": entrant},
        {"type": "hand", "raised": True},
        {"type": "media_state", "mic": True},
        {"type": "e2ee_key", "to": entrant, "payload": "AAAA"},
        {"type": "admit", "room": slug, "id": entrant},
        {"type": "set_password", "room": slug, "password": None},
        {"type": "list_rooms"},
        {"type": "check_slug", "slug": slug},
        {"type": "watch", "room": slug},
    ):
        await waiting.send(msg)
        assert (await waiting.expect("error"))["code"] == "not_admitted", msg
    # Lobby chat reaches the leaders, not the participants.
    await waiting.send({"type": "chat", "text": "Ich warte noch"})
    line = await leader.expect("chat")
    assert line["lobby"] is True and line["text"] == "Ich warte noch" and line["from"] == entrant
    # The leader answers one waiting guest.
    await leader.send({"type": "chat", "room": slug, "to": entrant, "text": "Gleich!"})
    answer = await waiting.expect("chat")
    assert answer["text"] == "Gleich!" and answer["lobby"] is True
    # Nothing about the room's people reached the waiting guest.
    seen = json.dumps(waiting.history)
    assert "Drin" not in seen and '"participants"' not in seen


async def test_admit_from_non_leader_is_refused(connect: Connect, kreis_server: Any) -> None:
    slug = "kein-tuersteher"
    leader = await leader_with_room(connect, kreis_server, slug)
    guest, _ = await admitted_guest(connect, leader, slug, "Gast")
    waiting = await knock(connect, slug, "Wartend")
    wid = await entrant_id(leader, "Wartend")
    for msg in (
        {"type": "admit", "room": slug, "id": wid},
        {"type": "admit_all", "room": slug},
        {"type": "set_lobby", "room": slug, "on": False},
        {"type": "end_room", "room": slug},
    ):
        await guest.send(msg)
        assert (await guest.expect("error"))["code"] == "not_allowed", msg
    await settled(guest, leader, waiting)
    assert waiting.latest("joined") is None
    assert waiting.latest("lobby_status")["state"] == "waiting"  # type: ignore[index]


async def test_room_password_checked_first_then_lobby(connect: Connect, kreis_server: Any) -> None:
    slug = "mit-passwort-1"
    leader = await leader_with_room(connect, kreis_server, slug, password="Kerze-und-Tee")
    guest = await connect()
    join = {"type": "join", "room": slug, "name": "Gast", "invite": kreis_server.invite(slug)}
    await guest.send(join)
    assert (await guest.expect("error"))["code"] == "password_required"
    await guest.send({**join, "password": "falsch"})
    assert (await guest.expect("error"))["code"] == "bad_room_password"
    # The right password does not skip the lobby.
    await guest.send({**join, "password": "Kerze-und-Tee"})
    assert (await guest.expect("lobby_status"))["state"] == "waiting"
    gid = await entrant_id(leader, "Gast")
    await leader.send({"type": "admit", "room": slug, "id": gid})
    joined = await guest.expect("joined")
    assert joined["settings"]["has_password"] is True
    # The password is never sent to anyone.
    await settled(leader, guest)
    for client in (guest, leader):
        assert "Kerze-und-Tee" not in json.dumps(client.history)


async def test_room_password_guessing_is_limited(connect: Connect, kreis_server: Any) -> None:
    slug = "rate-passwort-1"
    await leader_with_room(connect, kreis_server, slug, password="richtig-geheim")
    guesser = await connect(address="192.0.2.44")
    codes = []
    for i in range(7):
        await guesser.send({"type": "join", "room": slug, "name": "G", "password": f"rate{i}"})
        codes.append((await guesser.expect("error"))["code"])
    # A stranger (no invitation) is not even told that the room exists.
    assert codes[:5] == ["room_closed"] * 5
    assert codes[5:] == ["rate_limited"] * 2
    await guesser.send({"type": "join", "room": slug, "name": "G", "password": "richtig-geheim"})
    assert (await guesser.expect("error"))["code"] == "rate_limited"
    honest = await connect(address="192.0.2.45")
    await honest.send({"type": "join", "room": slug, "name": "H", "password": "richtig-geheim"})
    assert (await honest.expect("lobby_status"))["state"] == "waiting"


async def test_disconnect_while_waiting_leaves_the_queue(
    connect: Connect, kreis_server: Any
) -> None:
    slug = "weg-beim-warten"
    leader = await leader_with_room(connect, kreis_server, slug)
    guest = await knock(connect, slug, "Kurz")
    await entrant_id(leader, "Kurz")
    await guest.close()
    queue = await leader.expect("lobby_queue")
    assert queue["entrants"] == [] and queue["knock"] is False


async def test_knock_timeout(server_factory: Any) -> None:
    from app.client import KreisClient

    server = server_factory(rooms={"knock_timeout_seconds": 10})
    async with KreisClient(server.url, kind="console") as leader, KreisClient(server.url) as guest:
        await login(leader, server)
        await leader.request({"type": "create_room", "slug": "timeout-probe"}, "room_created")
        join = {"type": "join", "room": "timeout-probe", "name": "Geduld"}
        assert (await guest.request(join, "lobby_status"))["state"] == "waiting"
        status = await guest.expect("lobby_status", timeout=15)
        assert status["state"] == "timeout"
        await asyncio.wait_for(guest.closed.wait(), 5)
        queue = await leader.expect("lobby_queue")
        while queue["entrants"]:
            queue = await leader.expect("lobby_queue")


async def test_lobby_off_admits_after_password(connect: Connect, kreis_server: Any) -> None:
    slug = "ohne-lobby-1"
    leader = await leader_with_room(connect, kreis_server, slug, lobby=False)
    guest = await connect()
    joined = await guest.request({"type": "join", "room": slug, "name": "Direkt"}, "joined")
    assert joined["settings"]["lobby"] is False
    await leader.send({"type": "set_lobby", "room": slug, "on": True})
    await settled(leader)  # the lobby is on before the next guest knocks
    later = await knock(connect, slug, "Spaeter")
    assert later.latest("joined") is None


async def test_resume_skips_the_lobby(connect: Connect, kreis_server: Any) -> None:
    slug = "wieder-da-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    guest, gid = await admitted_guest(connect, leader, slug, "Netzwackler")
    token = guest.latest("joined")["resume"]  # type: ignore[index]
    await guest.close()
    back = await connect()
    joined = await back.request(
        {"type": "join", "room": slug, "name": "Netzwackler", "resume": token}, "joined"
    )
    assert joined["id"] == gid
    # A ticket works once.
    other = await connect()
    reply = await other.request(
        {"type": "join", "room": slug, "name": "Dieb", "resume": token}, "lobby_status"
    )
    assert reply["state"] == "waiting"
