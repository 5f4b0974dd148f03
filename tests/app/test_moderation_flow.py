"""Leader commands in a live room, and the room's end, against a real server."""

from __future__ import annotations

import asyncio
import json
import urllib.request
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


def live_rooms(server: Any) -> int:
    """From /metrics (loopback may read it): /healthz tells nobody how many rooms live."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("kreis_rooms "):
                return int(float(line.split()[1]))
    raise AssertionError("no kreis_rooms in /metrics")


async def test_participants_chat_and_hands(connect: Connect, kreis_server: Any) -> None:
    slug = "gespraechs-runde"
    leader = await leader_with_room(connect, kreis_server, slug)
    anna, anna_id = await admitted_guest(connect, leader, slug, "Anna")
    bert, _ = await admitted_guest(connect, leader, slug, "Bert")
    await anna.send({"type": "chat", "text": "Hallo Bert"})
    line = await bert.expect("chat")
    assert (line["name"], line["text"], line["from"]) == ("Anna", "Hallo Bert", anna_id)
    await anna.send({"type": "hand", "raised": True})
    while True:
        people = await bert.expect("participants")
        hands = {p["name"]: p["hand"] for p in people["participants"]}
        if hands.get("Anna"):
            break
    # A latecomer gets the room's chat so far (from memory, marked as history).
    carla, _ = await admitted_guest(connect, leader, slug, "Carla")
    old = await carla.expect("chat")
    assert old["history"] is True and old["text"] == "Hallo Bert"


async def test_lock_remove_bar_promote_mute(connect: Connect, kreis_server: Any) -> None:
    slug = "moderiert-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    anna, anna_id = await admitted_guest(connect, leader, slug, "Anna")
    bert, bert_id = await admitted_guest(connect, leader, slug, "Bert")

    await leader.send({"type": "mute_request", "room": slug, "id": anna_id})
    assert (await anna.expect("mute_request"))["room"] == slug

    await leader.send({"type": "promote", "room": slug, "id": anna_id})
    await anna.expect("lobby_queue")  # a co-leader now sees the lobby
    carl = await knock(connect, slug, "Carl")
    carl_id = await entrant_id(anna, "Carl")
    await anna.send({"type": "admit", "room": slug, "id": carl_id})
    assert (await carl.expect("joined"))["role"] == "guest"

    await leader.send({"type": "remove", "room": slug, "id": bert_id, "bar": True})
    removed = await bert.expect("removed")
    assert removed["barred"] is True
    await asyncio.wait_for(bert.closed.wait(), 5)
    # With the invitation they are told why; a stranger only learns "closed".
    invite = kreis_server.invite(slug)
    again = await connect()
    await again.send({"type": "join", "room": slug, "name": "bert", "invite": invite})
    assert (await again.expect("error"))["code"] == "barred"
    await again.send({"type": "join", "room": slug, "name": "bert"})
    assert (await again.expect("error"))["code"] == "room_closed"

    await leader.send({"type": "set_lock", "room": slug, "locked": True})
    late = await connect()
    await late.send({"type": "join", "room": slug, "name": "Zu spaet", "invite": invite})
    assert (await late.expect("error"))["code"] == "room_locked"
    state = await anna.expect("room_state")
    while not state["settings"]["locked"]:
        state = await anna.expect("room_state")


async def test_set_and_clear_password(connect: Connect, kreis_server: Any) -> None:
    slug = "passwort-wechsel"
    leader = await leader_with_room(connect, kreis_server, slug)
    await leader.send({"type": "set_password", "room": slug, "password": "Lindenblatt"})
    state = await leader.expect("room_state")
    while not state["settings"]["has_password"]:
        state = await leader.expect("room_state")
    guest = await connect()
    invite = kreis_server.invite(slug)
    await guest.send({"type": "join", "room": slug, "name": "Gast", "invite": invite})
    assert (await guest.expect("error"))["code"] == "password_required"
    await leader.send({"type": "set_password", "room": slug, "password": None})
    state = await leader.expect("room_state")
    while state["settings"]["has_password"]:
        state = await leader.expect("room_state")
    reply = await guest.request({"type": "join", "room": slug, "name": "Gast"}, "lobby_status")
    assert reply["state"] == "waiting"
    assert "Lindenblatt" not in json.dumps(leader.history + guest.history)


async def test_end_room_forgets_everything(connect: Connect, kreis_server: Any) -> None:
    slug = "ende-gut-1"
    leader = await leader_with_room(connect, kreis_server, slug)
    guest, _ = await admitted_guest(connect, leader, slug, "Gast")
    # The old room had chat, and a latecomer to it would have been given it: so the
    # newcomer below seeing none means the end forgot it, not that there was none.
    await guest.send({"type": "chat", "text": "Altes Thema"})
    assert (await leader.expect("chat"))["text"] == "Altes Thema"
    latecomer, _ = await admitted_guest(connect, leader, slug, "Spaet")
    assert (await latecomer.expect("chat"))["text"] == "Altes Thema"
    waiting = await knock(connect, slug, "Wartend")
    await entrant_id(leader, "Wartend")
    assert live_rooms(kreis_server) == 1
    await leader.send({"type": "end_room", "room": slug})
    assert (await guest.expect("room_ended"))["room"] == slug
    assert (await waiting.expect("lobby_status"))["state"] == "ended"
    assert (await leader.expect("room_ended"))["room"] == slug
    await asyncio.wait_for(guest.closed.wait(), 5)
    assert live_rooms(kreis_server) == 0
    # The slug is free again, and nothing of the old room comes back.
    await leader.request({"type": "create_room", "slug": slug}, "room_created")
    newcomer, _ = await admitted_guest(connect, leader, slug, "Neu")
    [since_joined] = await settled(newcomer)
    assert newcomer.latest("chat") is None, since_joined
    assert "Altes Thema" not in json.dumps(newcomer.history)


async def test_empty_room_ends_by_itself(server_factory: Any) -> None:
    from app.client import KreisClient

    server = server_factory(rooms={"empty_timeout_seconds": 1})
    async with KreisClient(server.url, kind="console") as leader:
        await login(leader, server)
        await leader.request({"type": "create_room", "slug": "bald-leer"}, "room_created")
        await leader.send({"type": "unwatch", "room": "bald-leer"})
        for _ in range(50):
            if live_rooms(server) == 0:
                break
            await asyncio.sleep(0.1)
        assert live_rooms(server) == 0


async def test_rooms_belong_to_their_group(connect: Connect, server_factory: Any) -> None:
    from app.client import KreisClient
    from app.passwords import hash_password

    extra = f'\n[groups.andere]\npassword_hash = "{hash_password("anderes-passwort-1")}"\n'
    server = server_factory(extra_config=extra)
    async with (
        KreisClient(server.url, kind="console") as ours,
        KreisClient(server.url, kind="console") as theirs,
    ):
        await login(ours, server)
        await ours.request({"type": "create_room", "slug": "unser-raum"}, "room_created")
        await theirs.request(
            {"type": "login", "group": "andere", "password": "anderes-passwort-1"}, "login_ok"
        )
        listing = await theirs.request({"type": "list_rooms"}, "room_list")
        assert listing["rooms"] == []
        # Another group's room looks like no room at all.
        await theirs.send({"type": "watch", "room": "unser-raum"})
        assert (await theirs.expect("error"))["code"] == "no_such_room"
        await theirs.send({"type": "end_room", "room": "unser-raum"})
        assert (await theirs.expect("error"))["code"] == "no_such_room"
        listing = await ours.request({"type": "list_rooms"}, "room_list")
        assert [r["slug"] for r in listing["rooms"]] == ["unser-raum"]


async def test_leaders_get_the_invitation_link_and_guests_do_not(
    connect: Connect, kreis_server: Any
) -> None:
    slug = "einladung-fuer-alle-leitungen"
    leader = await leader_with_room(connect, kreis_server, slug)
    link = f"{kreis_server.url}/{slug}?k={kreis_server.invite(slug)}"
    assert (await leader.expect("room_state"))["invite_url"] == link
    second = await connect(kind="console")
    await login(second, kreis_server)
    await second.send({"type": "watch", "room": slug})
    assert (await second.expect("room_state"))["invite_url"] == link
    guest, _ = await admitted_guest(connect, leader, slug, "Gast")
    await leader.request({"type": "set_lock", "room": slug, "locked": True}, "room_state")
    assert (await guest.expect("room_state"))["invite_url"] is None
    assert link not in json.dumps(guest.history)
