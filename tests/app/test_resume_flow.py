"""Resume tokens over a real server: who comes back without knocking, and who must knock.

Forged, other-room, expired, removed, barred and replayed tokens knock (or are barred);
a real restart of `kreis serve` brings everyone back: the leader's token starts the room
again with the same people, a guest's token never starts a room by itself, and an ended
room's tokens seat nobody in a room started anew at its slug. When the last leader
leaves, everyone is told, a co-leader takes over, and the lobby says no leader is there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kreis_server import KreisServer, start_server
from protocol_steps import Connect, admitted_guest, entrant_id, leader_with_room, login

from app.client import KreisClient

GRACE = 4
"""Seconds a dropped participant may take to come back, on this module's server."""


@pytest.fixture(scope="module")
def resume_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KreisServer]:
    """One server for the tests that use distinct slugs, with a short grace time."""
    server = start_server(tmp_path_factory.mktemp("resume"), rooms={"resume_grace_seconds": GRACE})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def connect(resume_server: KreisServer) -> AsyncIterator[Connect]:
    opened: list[KreisClient] = []

    async def open_client(kind: str = "browser", address: str | None = None) -> KreisClient:
        client = KreisClient(resume_server.url, kind=kind)
        await client.connect()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


async def resume(
    connect: Connect, server: Any, slug: str, name: str, token: str, invite: bool = True
) -> dict[str, Any]:
    """A new connection joins with `token`; the first answer that says where it is."""
    client = await connect()
    join: dict[str, Any] = {"type": "join", "room": slug, "name": name, "resume": token}
    if invite:
        join["invite"] = server.invite(slug)
    return await client.request(join, "joined", "lobby_status", "waiting_for_leader", "error")


async def test_forged_and_other_room_tokens_knock(connect: Connect, resume_server: Any) -> None:
    leader = await leader_with_room(connect, resume_server, "echt-1")
    await leader.request({"type": "create_room", "slug": "anders-1"}, "room_created")
    guest, _gid = await admitted_guest(connect, leader, "echt-1", "Anna")
    token = str((guest.latest("joined") or {})["resume"])
    assert token.startswith("k1.") and "Anna" not in token and "echt" not in token
    await guest.close()
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    for slug, tried in (("echt-1", forged), ("echt-1", "r_" + "x" * 20), ("anders-1", token)):
        reply = await resume(connect, resume_server, slug, "Anna", tried)
        assert (reply["type"], reply.get("state")) == ("lobby_status", "waiting"), (slug, reply)
    # The genuine token still works: nothing above spent it.
    assert (await resume(connect, resume_server, "echt-1", "Anna", token))["type"] == "joined"


async def test_an_expired_absence_knocks(connect: Connect, resume_server: Any) -> None:
    server = resume_server
    leader = await leader_with_room(connect, server, "kurz-1")
    guest, _gid = await admitted_guest(connect, leader, "kurz-1", "Berta")
    token = str((guest.latest("joined") or {})["resume"])
    await guest.close()
    await asyncio.sleep(GRACE + 2)  # the grace is over (the reaper runs every second)
    reply = await resume(connect, server, "kurz-1", "Berta", token)
    assert (reply["type"], reply.get("state")) == ("lobby_status", "waiting"), reply


async def test_removed_and_barred_tokens_are_revoked(connect: Connect, resume_server: Any) -> None:
    slug = "raus-1"
    leader = await leader_with_room(connect, resume_server, slug)
    anna, anna_id = await admitted_guest(connect, leader, slug, "Anna")
    bert, bert_id = await admitted_guest(connect, leader, slug, "Bert")
    anna_token = str((anna.latest("joined") or {})["resume"])
    bert_token = str((bert.latest("joined") or {})["resume"])
    # Removed while present (her page would drop the token; a thief would not).
    await leader.send({"type": "remove", "room": slug, "id": anna_id, "bar": False})
    await anna.expect("removed")
    reply = await resume(connect, resume_server, slug, "Anna", anna_token)
    assert (reply["type"], reply.get("state")) == ("lobby_status", "waiting"), reply
    # Barred while away.
    await bert.close()
    while not any(p.get("away") for p in (await leader.expect("participants"))["participants"]):
        pass
    await leader.send({"type": "remove", "room": slug, "id": bert_id, "bar": True})
    reply = await resume(connect, resume_server, slug, "Bert", bert_token)
    assert (reply["type"], reply.get("code")) == ("error", "barred"), reply


async def test_a_token_works_once_and_its_successor_works(
    connect: Connect, resume_server: Any
) -> None:
    slug = "einmal-1"
    leader = await leader_with_room(connect, resume_server, slug)
    guest, gid = await admitted_guest(connect, leader, slug, "Carla")
    first = str((guest.latest("joined") or {})["resume"])
    await guest.close()
    joined = await resume(connect, resume_server, slug, "Carla", first)
    assert (joined["type"], joined["id"]) == ("joined", gid)
    replay = await resume(connect, resume_server, slug, "Carla", first)
    assert (replay["type"], replay.get("state")) == ("lobby_status", "waiting"), replay
    # Its successor takes the seat over even before the server noticed the old socket
    # died (a half-open connection after a network cut).
    again = await resume(connect, resume_server, slug, "Carla", str(joined["resume"]))
    assert (again["type"], again["id"]) == ("joined", gid)


async def test_a_restart_brings_the_room_back_with_its_people(
    connect: Connect, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "neustart")
    clients: list[KreisClient] = []

    async def open_client(kind: str = "browser") -> KreisClient:
        client = KreisClient(server.url, kind=kind)
        await client.connect()
        clients.append(client)
        return client

    try:
        slug = "neustart-1"
        console = await open_client("console")
        await login(console, server)
        await console.request({"type": "create_room", "slug": slug}, "room_created")
        watch_token = str((await console.expect("resume_token"))["token"])
        guest = await open_client()
        await guest.request(
            {"type": "join", "room": slug, "name": "Dora", "invite": server.invite(slug)},
            "lobby_status",
        )
        gid = await entrant_id(console, "Dora")
        await console.send({"type": "promote", "room": slug, "id": gid})  # refused: lobby
        await console.send({"type": "admit", "room": slug, "id": gid})
        joined = await guest.expect("joined")
        await console.send({"type": "promote", "room": slug, "id": gid})
        # The role changed: a fresh token says so at once.
        token = str((await guest.expect("resume_token"))["token"])
        ended = await open_client("console")
        await login(ended, server)
        await ended.request({"type": "create_room", "slug": "vorbei-1"}, "room_created")
        other = await open_client()
        await other.request(
            {
                "type": "join",
                "room": "vorbei-1",
                "name": "Emil",
                "invite": server.invite("vorbei-1"),
            },
            "lobby_status",
        )
        await ended.send(
            {"type": "admit", "room": "vorbei-1", "id": await entrant_id(ended, "Emil")}
        )
        emil_token = str((await other.expect("joined"))["resume"])
        await ended.request({"type": "end_room", "room": "vorbei-1"}, "room_ended")

        server.stop()
        for client in clients:
            await client.close()
        server = start_server(tmp_path / "neustart")

        # A guest's token waits for the leader; it never starts the room by itself.
        back = await open_client()
        reply = await back.request(
            {"type": "join", "room": slug, "name": "Dora", "resume": token}, "waiting_for_leader"
        )
        assert reply["room"] == slug
        emil = await open_client()
        reply = await emil.request(
            {"type": "join", "room": "vorbei-1", "name": "Emil", "resume": emil_token},
            "waiting_for_leader",
        )
        # The console comes back and its token starts the room again.
        console = await open_client("console")
        await login(console, server)
        await console.request({"type": "watch", "room": slug, "resume": watch_token}, "room_state")
        rejoined = await back.expect("joined")
        assert (rejoined["id"], rejoined["role"]) == (gid, "coleader")
        assert rejoined["id"] == joined["id"]
        # The ended room's guest is still waiting: a room started anew at that slug
        # lets them knock like anyone else.
        console2 = await open_client("console")
        await login(console2, server)
        await console2.request({"type": "create_room", "slug": "vorbei-1"}, "room_created")
        reply = await emil.expect("lobby_status", "joined")
        assert (reply["type"], reply.get("state")) == ("lobby_status", "waiting"), reply
    finally:
        for client in clients:
            await client.close()
        server.stop()


async def test_the_last_leader_leaves(connect: Connect, resume_server: Any) -> None:
    slug = "ohne-leitung-1"
    leader = await connect()
    await login(leader, resume_server)
    await leader.request({"type": "create_room", "slug": slug}, "room_created")
    await leader.request({"type": "join", "room": slug, "name": ""}, "joined")
    anna, anna_id = await admitted_guest(connect, leader, slug, "Anna")
    bert, _bert_id = await admitted_guest(connect, leader, slug, "Bert")
    await leader.send({"type": "promote", "room": slug, "id": anna_id})
    await leader.close()  # the tab is closed (the page both watched and sat in the room)
    told = await bert.expect("leader_state")
    assert (told["present"], told["successor"]) == (True, anna_id)
    assert (await anna.expect("leader_state"))["successor"] == anna_id
    token = await anna.expect("resume_token")
    assert token["room"] == slug  # her token now says "leader"
    # Anna leaves too: nobody leads the room any more.
    await anna.send({"type": "leave"})
    told = await bert.expect("leader_state")
    assert (told["present"], told["successor"]) == (False, None)
    late = await connect()
    reply = await late.request(
        {"type": "join", "room": slug, "name": "Spaet", "invite": resume_server.invite(slug)},
        "lobby_status",
    )
    assert (reply["state"], reply["leader_present"]) == ("waiting", False)
