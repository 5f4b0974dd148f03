"""The lobby gate against what a stranger can send (issue "Nobody gets in, or listens,
unseen"): self-declared consoles, bursts of password guesses, knock floods, silent
probes for live rooms, and squatting on another group's slug.

Every test talks raw protocol to a real server with the product's default limits
(tests/security/conftest.py); attackers and honest guests come from different source
addresses.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.client import KreisClient, ServerError
from app.passwords import hash_password

Open = Callable[..., Awaitable[KreisClient]]

pytestmark = pytest.mark.security

LEADER_IP = "198.51.100.1"
ATTACKER_IP = "203.0.113.66"
GUEST_IP = "192.0.2.10"


OTHER_GROUP = ("andere", "anderes-passwort-1")


def with_other_group(server_factory: Any, name: str) -> Any:
    """A server with the default limits and a second group, `OTHER_GROUP`."""
    extra = f'\n[groups.{OTHER_GROUP[0]}]\npassword_hash = "{hash_password(OTHER_GROUP[1])}"\n'
    return server_factory(name, extra_config=extra, limits={})


async def login(client: KreisClient, group: str, password: str) -> None:
    await client.request({"type": "login", "group": group, "password": password}, "login_ok")


async def leader_of(open_client: Open, server: Any, slug: str, **settings: Any) -> KreisClient:
    leader = await open_client(LEADER_IP, kind="console")
    await login(leader, server.group, server.password)
    await leader.request({"type": "create_room", "slug": slug, **settings}, "room_created")
    return leader


async def entrant_id(leader: KreisClient, name: str, timeout: float = 5) -> str:
    async def find() -> str:
        while True:
            queue = await leader.expect("lobby_queue")
            for entrant in queue["entrants"]:
                if entrant["name"] == name:
                    return str(entrant["id"])

    return await asyncio.wait_for(find(), timeout)


async def error_of(client: KreisClient, msg: dict[str, Any]) -> dict[str, Any]:
    await client.send(msg)
    return await client.expect("error")


# -- 1. invisible listeners


@pytest.mark.parametrize("lobby", [True, False])
async def test_a_self_declared_console_is_refused(
    open_client: Open, gate_server: Any, lobby: bool
) -> None:
    slug = f"konsole-{'mit' if lobby else 'ohne'}-lobby"
    leader = await leader_of(open_client, gate_server, slug, lobby=lobby)
    invite = gate_server.invite(slug)
    fake = await open_client(ATTACKER_IP, kind="console")
    for join in (
        {"type": "join", "room": slug, "name": "Anna"},
        {"type": "join", "room": slug, "name": "Anna", "invite": invite},
        {"type": "join", "room": slug, "name": ""},
    ):
        assert (await error_of(fake, join))["code"] == "console_not_leader"
    # A console logged in to another group is no leader of this room either.
    await asyncio.sleep(0.2)
    assert not [m for m in leader.history if m["type"] == "lobby_queue" and m["entrants"]]
    assert fake.latest("joined") is None


async def test_a_console_of_another_group_is_refused(server_factory: Any) -> None:
    server = with_other_group(server_factory, "zwei-gruppen")
    async with (
        KreisClient(server.url, kind="console") as ours,
        KreisClient(server.url, kind="console") as theirs,
    ):
        await login(ours, server.group, server.password)
        await ours.request({"type": "create_room", "slug": "unsere-runde"}, "room_created")
        await login(theirs, *OTHER_GROUP)
        join = {"type": "join", "room": "unsere-runde", "name": "X"}
        join["invite"] = server.invite("unsere-runde")
        assert (await error_of(theirs, join))["code"] == "console_not_leader"


async def test_a_logged_in_console_is_listed_for_everyone(
    open_client: Open, gate_server: Any
) -> None:
    slug = "sichtbare-konsole"
    leader = await leader_of(open_client, gate_server, slug)
    guest = await open_client(GUEST_IP)
    await guest.request(
        {"type": "join", "room": slug, "name": "Gast", "invite": gate_server.invite(slug)},
        "lobby_status",
    )
    await leader.send({"type": "admit", "room": slug, "id": await entrant_id(leader, "Gast")})
    await guest.expect("joined")
    await leader.request({"type": "join", "room": slug, "name": ""}, "joined")

    async def console_listed() -> dict[str, Any]:
        while True:
            people = await guest.expect("participants")
            for person in people["participants"]:
                if person["kind"] == "console":
                    return dict(person)

    console = await asyncio.wait_for(console_listed(), 5)
    assert console["role"] == "leader" and console["away"] is False


async def test_the_lobby_queue_shows_each_entrants_kind(
    open_client: Open, gate_server: Any
) -> None:
    slug = "arten-im-warteraum"
    leader = await leader_of(open_client, gate_server, slug, dial_in=True)
    state = await leader.expect("room_state")
    gateway = await open_client("127.0.0.1", kind="gateway")
    await gateway.request(
        {"type": "gateway_auth", "secret": gate_server.gateway_secret}, "gateway_ok"
    )
    await gateway.request(
        {"type": "dial_in", "pin": state["dial_in_pin"], "caller": "…47"}, "lobby_status"
    )
    guest = await open_client(GUEST_IP)
    await guest.request({"type": "join", "room": slug, "name": "Gast"}, "lobby_status")

    async def kinds() -> dict[str, str]:
        while True:
            queue = await leader.expect("lobby_queue")
            found = {e["name"]: e["kind"] for e in queue["entrants"]}
            if len(found) == 2:
                return found

    assert await asyncio.wait_for(kinds(), 5) == {"Telefon …47": "phone", "Gast": "browser"}


# -- 3. bursts of guesses


async def test_a_burst_of_logins_gets_no_more_tries_than_the_limit(
    open_client: Open, gate_server: Any
) -> None:
    clients = [await open_client(ATTACKER_IP) for _ in range(30)]
    wrong = [
        c.send({"type": "login", "group": gate_server.group, "password": f"falsch-{i}"})
        for i, c in enumerate(clients[:29])
    ]
    await asyncio.gather(*wrong)
    await asyncio.sleep(0.05)  # read by the server, most still being hashed
    await clients[29].send(
        {"type": "login", "group": gate_server.group, "password": gate_server.password}
    )
    answers = await asyncio.gather(*(c.expect("login_ok", "error") for c in clients))
    codes = [a.get("code", a["type"]) for a in answers]
    assert codes.count("bad_credentials") == 5, codes
    assert codes.count("rate_limited") == 25, codes
    assert codes[29] == "rate_limited"
    # Another address is not locked out by it.
    await login(await open_client(LEADER_IP), gate_server.group, gate_server.password)


# -- 4. knock floods


async def test_a_knock_flood_from_one_address_does_not_lock_out_another(
    open_client: Open, gate_server: Any
) -> None:
    slug = "offene-tuer-1"
    leader = await leader_of(open_client, gate_server, slug)
    sockets: list[KreisClient] = []
    refused_sockets = 0
    for _ in range(40):
        try:
            sockets.append(await open_client(ATTACKER_IP))
        except Exception:  # 429 once the address holds its share of sockets
            refused_sockets += 1
    assert len(sockets) == 30 and refused_sockets == 10
    codes: list[str] = []
    for round_ in range(10):  # 300 knocks, each socket knocking and leaving again
        for i, s in enumerate(sockets):
            await s.send({"type": "join", "room": slug, "name": f"Flut {round_}-{i}"})
        for s in sockets:
            reply = await s.expect("lobby_status", "error")
            codes.append(reply.get("code") or reply["state"])
            if reply["type"] == "lobby_status":
                await s.send({"type": "leave"})
    assert len(codes) == 300
    assert codes.count("waiting") <= 30, codes
    assert codes.count("rate_limited") >= 270
    # Lobby chat from a waiting entrant: short lines, a few per minute.
    chatter = await open_client("203.0.113.67")
    await chatter.request({"type": "join", "room": slug, "name": "Plauder"}, "lobby_status")
    assert (await error_of(chatter, {"type": "chat", "text": "x" * 1500}))["code"] == (
        "bad_message"
    )
    for i in range(12):
        await chatter.send({"type": "chat", "text": f"Zeile {i} " + "y" * 400})
    await asyncio.sleep(0.5)
    lines = [m for m in leader.history if m["type"] == "chat" and m["name"] == "Plauder"]
    assert len(lines) == 10
    assert chatter.latest("error")["code"] == "rate_limited"  # type: ignore[index]
    # A real guest from another address still knocks and is let in.
    guest = await open_client(GUEST_IP)
    await guest.request({"type": "join", "room": slug, "name": "Echter Gast"}, "lobby_status")
    await leader.send(
        {"type": "admit", "room": slug, "id": await entrant_id(leader, "Echter Gast")}
    )
    assert (await guest.expect("joined"))["room"] == slug


async def test_lobby_entrants_do_not_fill_the_room(server_factory: Any) -> None:
    server = server_factory("klein", rooms={"max_participants": 2}, limits={})
    async with KreisClient(server.url, kind="console") as leader:
        await login(leader, server.group, server.password)
        await leader.request({"type": "create_room", "slug": "kleine-runde"}, "room_created")
        waiting = []
        for i in range(4):
            guest = KreisClient(server.url, headers={"X-Forwarded-For": f"192.0.2.{20 + i}"})
            await guest.connect()
            waiting.append(guest)
            await guest.request(
                {"type": "join", "room": "kleine-runde", "name": f"G{i}"}, "lobby_status"
            )
        # Four wait although the room holds two; the leader admits two, not a third.
        ids = [await entrant_id(leader, f"G{i}") for i in range(4)]
        for member_id in ids[:2]:
            await leader.send({"type": "admit", "room": "kleine-runde", "id": member_id})
        for guest in waiting[:2]:
            await guest.expect("joined")
        refused = await error_of(leader, {"type": "admit", "room": "kleine-runde", "id": ids[2]})
        assert refused["code"] == "room_full"
        for guest in waiting:
            await guest.close()


# -- 5. silent probes


async def test_probes_for_a_live_room_and_an_unused_slug_get_one_answer(
    open_client: Open, gate_server: Any
) -> None:
    await leader_of(open_client, gate_server, "mit-passwort-9", password="Kerze-Tee")
    locked = await leader_of(open_client, gate_server, "abgeschlossen-9")
    await locked.request(
        {"type": "set_lock", "room": "abgeschlossen-9", "locked": True}, "room_state"
    )
    prober = await open_client(ATTACKER_IP)
    answers = []
    for slug in ("mit-passwort-9", "abgeschlossen-9", "gibt-es-nicht-9"):
        answers.append(await error_of(prober, {"type": "join", "room": slug, "name": "P"}))
    answers.append(
        await error_of(
            prober, {"type": "join", "room": "mit-passwort-9", "name": "P", "password": "rate"}
        )
    )
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["code"] == "room_closed"
    # The knocks on live rooms were knocks: their leaders see how many were turned away.
    queue = locked.latest("lobby_queue")
    assert queue is not None and queue["refused"] == 1 and queue["entrants"] == []
    # The fifth probe used up the limit; from now on only rate_limited, for any slug.
    last = await error_of(prober, {"type": "join", "room": "gibt-es-nicht-9", "name": "P"})
    assert last["code"] == "room_closed"
    for slug in ("mit-passwort-9", "gibt-es-nicht-9"):
        late = await error_of(prober, {"type": "join", "room": slug, "name": "P"})
        assert late["code"] == "rate_limited" and late["retry_after"] > 0


async def test_an_admitted_guest_cannot_tell_live_rooms_from_unused(
    open_client: Open, gate_server: Any
) -> None:
    leader = await leader_of(open_client, gate_server, "erster-raum-7")
    await leader_of(open_client, gate_server, "zweiter-raum-7")
    guest = await open_client(GUEST_IP)
    await guest.request({"type": "join", "room": "erster-raum-7", "name": "G"}, "lobby_status")
    await leader.send(
        {"type": "admit", "room": "erster-raum-7", "id": await entrant_id(leader, "G")}
    )
    await guest.expect("joined")
    live = await error_of(guest, {"type": "admit", "room": "zweiter-raum-7", "id": "p_x"})
    unused = await error_of(guest, {"type": "admit", "room": "nie-benutzt-7", "id": "p_x"})
    assert live == unused and live["code"] == "not_allowed"


async def test_another_groups_leader_cannot_map_live_rooms(server_factory: Any) -> None:
    server = with_other_group(server_factory, "sonde")
    async with (
        KreisClient(server.url, kind="console") as ours,
        KreisClient(server.url, kind="console") as theirs,
    ):
        await login(ours, server.group, server.password)
        await ours.request({"type": "create_room", "slug": "unsere-runde-3"}, "room_created")
        await login(theirs, *OTHER_GROUP)
        live = await error_of(theirs, {"type": "watch", "room": "unsere-runde-3"})
        unused = await error_of(theirs, {"type": "watch", "room": "keine-runde-3"})
        assert live == unused and live["code"] == "no_such_room"
        taken = []
        for _ in range(22):
            reply = await theirs.request(
                {"type": "check_slug", "slug": "unsere-runde-3"}, "slug_check", "error"
            )
            taken.append(reply.get("reason") or reply.get("code"))
        assert taken[:20] == ["room_exists"] * 20 and taken[20:] == ["rate_limited"] * 2


def test_healthz_tells_no_counts(gate_server: Any) -> None:
    with urllib.request.urlopen(gate_server.url + "/healthz", timeout=5) as reply:
        body = json.load(reply)
    assert body == {"status": "ok", "media": True}


# -- 10. slug squatting


async def test_an_early_knock_waits_for_the_inviting_group_only(server_factory: Any) -> None:
    server = with_other_group(server_factory, "besetzer")
    slug = "donnerstag-runde-5"
    async with (
        KreisClient(server.url, headers={"X-Forwarded-For": GUEST_IP}) as early,
        KreisClient(server.url, kind="console") as squatter,
        KreisClient(server.url, kind="console") as ours,
    ):
        # Without the invitation, an unstarted room says only "closed".
        assert (await error_of(early, {"type": "join", "room": slug, "name": "Frieda"}))[
            "code"
        ] == "room_closed"
        await early.request(
            {"type": "join", "room": slug, "name": "Frieda", "invite": server.invite(slug)},
            "waiting_for_leader",
        )
        # Another group's leader starts the slug first: Frieda is not handed over.
        await login(squatter, *OTHER_GROUP)
        await squatter.request({"type": "create_room", "slug": slug}, "room_created")
        await asyncio.sleep(0.3)
        assert not [m for m in squatter.history if m["type"] == "lobby_queue" and m["entrants"]]
        assert early.latest("lobby_status") is None
        with pytest.raises(ServerError):  # a forged code is no invitation either
            await early.request(
                {"type": "join", "room": slug, "name": "F", "invite": "aaaaaaaaaaaa"}, "joined"
            )
        # When the squatter's room ends and the right group starts it, she knocks there.
        await squatter.request({"type": "end_room", "room": slug}, "room_ended")
        await login(ours, server.group, server.password)
        await ours.request({"type": "create_room", "slug": slug}, "room_created")
        assert (await early.expect("lobby_status"))["state"] == "waiting"
        assert await entrant_id(ours, "Frieda")
