"""Protocol steps the tests repeat: log in, start a room, knock, admit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.client import KreisClient

Connect = Callable[..., Awaitable[KreisClient]]


async def login(client: KreisClient, server: Any) -> None:
    await client.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )


async def leader_with_room(
    connect: Connect, server: Any, slug: str, **settings: Any
) -> KreisClient:
    leader = await connect(kind="console")
    await login(leader, server)
    await leader.request({"type": "create_room", "slug": slug, **settings}, "room_created")
    return leader


async def knock(connect: Connect, slug: str, name: str, **extra: Any) -> KreisClient:
    guest = await connect(address=extra.pop("address", None))
    reply = await guest.request(
        {"type": "join", "room": slug, "name": name, **extra}, "lobby_status", "joined"
    )
    assert reply["type"] == "lobby_status" and reply["state"] == "waiting", reply
    return guest


async def entrant_id(leader: KreisClient, name: str) -> str:
    """Waits until `name` shows in the leader's lobby queue and returns its id."""
    while True:
        queue = await leader.expect("lobby_queue")
        for entrant in queue["entrants"]:
            if entrant["name"] == name:
                return str(entrant["id"])


async def admitted_guest(
    connect: Connect, leader: KreisClient, slug: str, name: str
) -> tuple[KreisClient, str]:
    guest = await knock(connect, slug, name)
    gid = await entrant_id(leader, name)
    await leader.send({"type": "admit", "room": slug, "id": gid})
    joined = await guest.expect("joined")
    return guest, str(joined["id"])


async def settled(*clients: KreisClient) -> list[list[dict[str, Any]]]:
    """A ping/pong round trip per client, in the order given; returns, per client, what
    it received before its `pong`.

    The server handles one connection's messages in order and sends to one connection
    in order, so a `pong` proves that everything sent earlier on that connection was
    handled and that whatever the server sent to it before has arrived. Going through
    the acting client first and the watching client second turns "nothing happened"
    into a checked statement instead of a guess after a sleep.
    """
    received: list[list[dict[str, Any]]] = []
    for client in clients:
        before = len(client.history)
        await client.request({"type": "ping"}, "pong")
        received.append(client.history[before:])
    return received
