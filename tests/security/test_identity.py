"""Who someone is, and for how long (issue "Nobody gets in, or listens, unseen"): stale
participant ids, resume tickets a leader must be able to revoke, slugs and names that
pass for something else, and test endpoints that a production server must not have.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hostile_names import BLANK

from app.client import KreisClient

pytestmark = pytest.mark.security

Open = Callable[..., Awaitable[KreisClient]]
LEADER_IP = "198.51.100.1"
GUEST_IP = "192.0.2.10"


async def leader_of(open_client: Open, server: Any, slug: str) -> KreisClient:
    leader = await open_client(LEADER_IP, kind="console")
    await leader.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )
    await leader.request({"type": "create_room", "slug": slug}, "room_created")
    return leader


async def lobby_ids(leader: KreisClient, count: int) -> dict[str, str]:
    """Name → id of the lobby, once it holds `count` entrants."""

    async def wait() -> dict[str, str]:
        while True:
            queue = await leader.expect("lobby_queue")
            if len(queue["entrants"]) == count:
                return {e["name"]: e["id"] for e in queue["entrants"]}

    return await asyncio.wait_for(wait(), 5)


async def admitted(open_client: Open, leader: KreisClient, slug: str, name: str) -> KreisClient:
    guest = await open_client(GUEST_IP)
    await guest.request({"type": "join", "room": slug, "name": name}, "lobby_status")
    ids = await lobby_ids(leader, 1)
    await leader.send({"type": "admit", "room": slug, "id": ids[name]})
    await guest.expect("joined")
    return guest


async def people(client: KreisClient, until: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
    async def wait() -> list[Any]:
        while True:
            listed = (await client.expect("participants"))["participants"]
            if until(listed):
                return list(listed)

    return await asyncio.wait_for(wait(), 5)


# -- 6. stale ids


async def test_a_stale_id_admits_nobody(open_client: Open, gate_server: Any) -> None:
    slug = "alte-nummer-1"
    leader = await leader_of(open_client, gate_server, slug)
    sock = await open_client(GUEST_IP)
    await sock.request({"type": "join", "room": slug, "name": "Berta"}, "lobby_status")
    berta_id = (await lobby_ids(leader, 1))["Berta"]
    await sock.send({"type": "leave"})
    await lobby_ids(leader, 0)
    await sock.request({"type": "join", "room": slug, "name": "Mallory"}, "lobby_status")
    mallory_id = (await lobby_ids(leader, 1))["Mallory"]
    assert mallory_id != berta_id
    await leader.send({"type": "admit", "room": slug, "id": berta_id})
    assert (await leader.expect("error"))["code"] == "no_such_participant"
    await asyncio.sleep(0.2)
    assert sock.latest("joined") is None


# -- 7. resume tickets


async def drop(client: KreisClient) -> None:
    """The connection vanishes without a `leave` (network gone)."""
    assert client._ws is not None
    await client._ws.close()
    await asyncio.wait_for(client.closed.wait(), 5)


async def test_a_leader_removes_someone_who_is_away(open_client: Open, gate_server: Any) -> None:
    slug = "weg-und-raus-1"
    leader = await leader_of(open_client, gate_server, slug)
    anna = await admitted(open_client, leader, slug, "Anna")
    ticket = (anna.latest("joined") or {})["resume"]
    anna_id = (anna.latest("joined") or {})["id"]
    await drop(anna)
    away = await people(leader, lambda ps: any(p["away"] for p in ps))
    assert [(p["id"], p["name"], p["away"]) for p in away] == [(anna_id, "Anna", True)]
    await leader.send({"type": "remove", "room": slug, "id": anna_id, "bar": True})
    await people(leader, lambda ps: not ps)
    back = await open_client(GUEST_IP)
    await back.send({"type": "join", "room": slug, "name": "Anna", "resume": ticket})
    assert (await back.expect("error"))["code"] == "room_closed"
    await back.send(
        {
            "type": "join",
            "room": slug,
            "name": "Anna",
            "resume": ticket,
            "invite": gate_server.invite(slug),
        }
    )
    assert (await back.expect("error"))["code"] == "barred"


async def test_a_ticket_dies_with_the_room_and_survives_a_lock(
    open_client: Open, gate_server: Any
) -> None:
    slug = "ende-und-zu-1"
    leader = await leader_of(open_client, gate_server, slug)
    bert = await admitted(open_client, leader, slug, "Bert")
    ticket = (bert.latest("joined") or {})["resume"]
    await drop(bert)
    await people(leader, lambda ps: any(p["away"] for p in ps))
    # A lock keeps new people out, not admitted people coming back.
    await leader.request({"type": "set_lock", "room": slug, "locked": True}, "room_state")
    again = await open_client(GUEST_IP)
    joined = await again.request(
        {"type": "join", "room": slug, "name": "Bert", "resume": ticket}, "joined"
    )
    ticket = joined["resume"]
    await drop(again)
    await people(leader, lambda ps: any(p["away"] for p in ps))
    await leader.request({"type": "end_room", "room": slug}, "room_ended")
    await leader.request({"type": "create_room", "slug": slug}, "room_created")
    late = await open_client(GUEST_IP)
    reply = await late.request(
        {"type": "join", "room": slug, "name": "Bert", "resume": ticket}, "lobby_status", "joined"
    )
    assert reply["type"] == "lobby_status" and reply["state"] == "waiting"


# -- 8. slugs and names


async def test_slugs_are_matched_in_full(open_client: Open, gate_server: Any) -> None:
    leader = await leader_of(open_client, gate_server, "echter-raum-1")
    for slug in ("echter-raum-1\n", "echter-raum-1\r\n", "\nechter-raum-1"):
        await leader.send({"type": "create_room", "slug": slug})
        assert (await leader.expect("error"))["code"] == "bad_slug"
        guest = await open_client(GUEST_IP)
        await guest.send({"type": "join", "room": slug, "name": "G"})
        assert (await guest.expect("error"))["code"] == "bad_slug"
    with pytest.raises(urllib.error.HTTPError) as page:
        urllib.request.urlopen(gate_server.url + "/echter-raum-1%0A", timeout=5)
    assert page.value.code == 404


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Leitung", "reserved_name"),
        ("leitung", "reserved_name"),
        ("Leitung\u200b", "reserved_name"),
        ("Lei\u200dtung", "reserved_name"),
        ("L\u0435itung", "reserved_name"),  # a Cyrillic e
        ("Leitung (Konsole)", "reserved_name"),
        ("Leitung Anna", "reserved_name"),
        *[(blank, "bad_name") for blank in BLANK],
    ],
)
async def test_reserved_and_blank_names_are_refused(
    open_client: Open, gate_server: Any, name: str, code: str
) -> None:
    guest = await open_client(GUEST_IP)
    await guest.send({"type": "join", "room": "irgendein-raum", "name": name})
    assert (await guest.expect("error"))["code"] == code


async def test_chat_is_cleaned_like_names(open_client: Open, gate_server: Any) -> None:
    slug = "saubere-zeilen-1"
    leader = await leader_of(open_client, gate_server, slug)
    await leader.request({"type": "join", "room": slug, "name": ""}, "joined")
    anna = await admitted(open_client, leader, slug, "Anna")
    await anna.send({"type": "chat", "text": "a\u202eb\u200bc\x1b[31md\x07\n\n\n\ne"})
    line = await leader.expect("chat")
    assert line["text"] == "abc[31md\n\ne"
    for blank in ("\u200b\u202e", "\u3164", "\x07\x1b"):
        await anna.send({"type": "chat", "text": blank})
        assert (await anna.expect("error"))["code"] == "bad_message"


# -- 9. test endpoints


def test_the_environment_adds_no_test_endpoints(server_factory: Any) -> None:
    server = server_factory("produktion", env={"KREIS_TEST_HOOKS": "1"})
    for method, path in (
        ("POST", "/_test/memory"),
        ("POST", "/_test/tap"),
        ("GET", "/_test/tap"),
        ("GET", "/_test/tap?participant=p_x"),
        ("GET", "/_test/"),
    ):
        request = urllib.request.Request(
            server.url + path, data=b"{}" if method == "POST" else None, method=method
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=5)
        assert answer.value.code == 404, path
