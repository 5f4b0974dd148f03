"""`kill -9` of a room's owner, over the protocol (what the console and the page
speak): the console and two admitted guests, all connected through a node that does not
own the room, are back in the room on another node within 10 s, without knocking; an
entrant who was waiting in the lobby knocks again and waits in the new lobby.
tests/cluster/test_cluster_browser.py does the same with Chromium and measures media."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from cluster_nodes import admit_newest
from kreis_server import GROUP, PASSWORD, KreisServer
from test_routing import leader, room_count

from app.client import KreisClient

pytestmark = pytest.mark.cluster


async def test_owner_killed_console_and_guests_back_without_knocking(
    nodes: list[KreisServer],
) -> None:
    slug = "ausfall-protokoll"
    before = [room_count(n) for n in nodes]
    creator = await leader(nodes[0])
    await creator.request(
        {"type": "create_room", "slug": slug, "lobby": True, "password": None}, "room_created"
    )
    owner = next(i for i, n in enumerate(nodes) if room_count(n) > before[i])
    entry = nodes[(owner + 1) % len(nodes)]
    tokens: dict[str, str] = {}

    def keep(who: str) -> Any:
        def seen(msg: dict[str, Any]) -> None:
            if msg.get("type") in ("joined", "resume_token") and msg.get("room") == slug:
                tokens[who] = msg.get("resume") or msg.get("token") or tokens.get(who, "")

        return seen

    console = await leader(entry)
    console.on_message.append(keep("console"))
    await console.request({"type": "watch", "room": slug}, "room_state")
    await creator.close()
    invite = entry.invite(slug)
    guests = []
    for name in ("Ahorn", "Birke", "Wartend"):
        guest = KreisClient(entry.url)
        await guest.connect()
        guest.on_message.append(keep(name))
        await guest.send({"type": "join", "room": slug, "name": name, "invite": invite})
        assert (await guest.expect("lobby_status"))["state"] == "waiting"
        guests.append(guest)
        if name == "Wartend":
            break  # the third one stays in the lobby
        await admit_newest(console, slug)
        await guest.expect("joined")

    killed = time.monotonic()
    nodes[owner].process.kill()

    async def back(who: str, old: KreisClient) -> KreisClient:
        await asyncio.wait_for(old.closed.wait(), 10)
        await old.close()
        while time.monotonic() - killed < 20:
            fresh = KreisClient(entry.url, kind="console" if who == "console" else "browser")
            try:
                await fresh.connect()
                fresh.on_message.append(keep(who))
                if who == "console":
                    await fresh.request(
                        {"type": "login", "group": GROUP, "password": PASSWORD}, "login_ok"
                    )
                    await fresh.request(
                        {"type": "watch", "room": slug, "resume": tokens[who]}, "room_state"
                    )
                elif who == "Wartend":  # never admitted: no token, knocks again
                    await fresh.send({"type": "join", "room": slug, "name": who, "invite": invite})
                    reply = await fresh.expect("lobby_status", "joined", timeout=15)
                    assert reply == {**reply, "type": "lobby_status", "state": "waiting"}, reply
                else:
                    await fresh.send(
                        {"type": "join", "room": slug, "name": who, "resume": tokens[who]}
                    )
                    reply = await fresh.expect("joined", "lobby_status", timeout=15)
                    assert reply["type"] == "joined", reply  # straight in: no knock
                return fresh
            except (OSError, TimeoutError, ConnectionError) as exc:
                print(f"{who}: {exc!r}, again")
                await fresh.close()
                await asyncio.sleep(0.3)
        raise AssertionError(f"{who} did not come back")

    admitted = ["console", "Ahorn", "Birke"]
    back_in = await asyncio.gather(
        *(back(w, c) for w, c in zip(admitted, [console, *guests[:2]], strict=True))
    )
    elapsed = time.monotonic() - killed
    print(f"FAILOVER (protocol): console and guests back {elapsed:.1f} s after kill -9")
    lobby = await back("Wartend", guests[2])
    try:
        assert elapsed < 10
        assert room_count(nodes[owner - 1]) + room_count(nodes[owner - 2]) == 1  # moved
        # the console sees the returning guests in the room and the lobby entrant waiting
        while True:
            queue = await back_in[0].expect("lobby_queue", timeout=15)
            if [e["name"] for e in queue["entrants"]] == ["Wartend"]:
                break
    finally:
        await back_in[0].send({"type": "end_room", "room": slug})
        for client in [*back_in, lobby]:
            await client.close()
