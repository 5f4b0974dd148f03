"""Joining, waiting, leading and leaving in real browsers against the real server:
leave and rejoin, a leader in the browser admitting a knock, mute requests and
removal, the room password prompt, waiting for the leader, and a network blip that
resumes without the lobby.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import pytest
from meeting_pages import (
    alice_and_bob,
    inbound,
    next_entrant,
    open_room,
    start_room,
    state_of,
    stats,
    wait_for,
    wait_state,
)
from page_checks import TRACK_PEER_CONNECTIONS

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


async def frames_from(page: Any, participant: str) -> int:
    snap = await stats(page)
    return sum(
        s["framesDecoded"]
        for s in inbound(snap, "video", "camera")
        if s["participant"] == participant
    )


async def frames_rising(page: Any, participant: str, what: str) -> None:
    first = await wait_for(lambda: frames_from(page, participant), 30, what)
    await wait_for(lambda: _more(page, participant, first), 10, what + " (rising)")


async def _more(page: Any, participant: str, than: int) -> bool:
    return await frames_from(page, participant) > than


async def my_id(page: Any) -> str:
    return str((await page.evaluate("window.kreis.me"))["id"])


async def listed_ids(page: Any) -> set[str]:
    return {p["id"] for p in await page.evaluate("window.kreis.participants")}


async def test_leave_and_rejoin(shared_server: Any, people: Any, leaders: list[Any]) -> None:
    slug = "gehen-und-wiederkommen"
    alice, bob = await alice_and_bob(shared_server, people, leaders, slug)
    alice_id, bob_id = await my_id(alice), await my_id(bob)
    await frames_rising(bob, alice_id, "Bob sees Alice")

    await alice.click("#btn-leave")
    await alice.click("#confirm-yes")
    await wait_state(alice, "ended")
    assert await alice.locator("#ended-text").text_content() == "You have left the meeting."
    await wait_for(lambda: _gone(bob, alice_id), 10, "Alice gone from Bob's list")
    assert await alice.locator("#tiles .tile").count() == 0
    # the devices are off after leaving (no camera light on the goodbye screen)
    assert await alice.evaluate("window.kreis.media") == {
        "mic": False,
        "camera": False,
        "screen": False,
    }

    await alice.click("#rejoin")
    await wait_state(alice, "prejoin")
    assert await alice.input_value("#name") == "Alice"
    await alice.click("#join")
    await wait_state(alice, "room")
    new_id = await my_id(alice)
    await frames_rising(bob, new_id, "Bob sees Alice again")
    await frames_rising(alice, bob_id, "Alice sees Bob again")


async def _gone(page: Any, participant: str) -> bool:
    return participant not in await listed_ids(page)


async def test_browser_leader_admits_a_knock(shared_server: Any, people: Any) -> None:
    slug = "leitung-im-browser"
    leader, guest = await people.page("de-DE"), await people.page()
    await open_room(leader, slug, "Leitung", leader=(shared_server.group, shared_server.password))
    await wait_state(leader, "room")
    assert (await leader.evaluate("window.kreis.me"))["role"] == "leader"

    evil = '<img src=x id="pwned">'
    await open_room(guest, slug, evil)
    await wait_state(guest, "lobby")
    # the knock: the leader panel opens by itself with the entrant in it
    entrant = leader.locator("#lobby-list li.entrant")
    await entrant.wait_for(timeout=10000)
    assert await leader.locator("#panel-leader").is_visible()
    assert await entrant.locator(".person-name").text_content() == evil
    assert await leader.locator("#pwned").count() == 0
    assert "wartet im Vorraum" in (await leader.locator("#notice").text_content() or "")

    # a word from the person waiting, one back, then Admit
    await guest.fill("#lobby-chat-input", "Ich bin etwas nervös.")
    await guest.press("#lobby-chat-input", "Enter")
    await (
        entrant.locator(".chat-text")
        .filter(has_text="Ich bin etwas nervös.")
        .wait_for(timeout=10000)
    )
    await entrant.locator("input").fill("Gleich geht es los.")
    await entrant.locator("button[type=submit]").click()
    await (
        guest.locator("#lobby-messages li")
        .filter(has_text="Gleich geht es los.")
        .wait_for(timeout=10000)
    )
    await entrant.locator('button[data-action="admit"]').click()
    await wait_state(guest, "room")
    guest_id, leader_id = await my_id(guest), await my_id(leader)
    await frames_rising(leader, guest_id, "leader sees the guest")
    await frames_rising(guest, leader_id, "guest sees the leader")
    assert await leader.locator("#lobby-list li").count() == 0
    tile_names = await leader.locator(".tile .tile-name").all_text_contents()
    assert evil in tile_names and await leader.locator("#pwned").count() == 0


async def test_leader_mutes_and_removes(shared_server: Any, people: Any) -> None:
    slug = "leitung-schaltet-stumm"
    leader, guest = await people.page(), await people.page()
    await open_room(leader, slug, "Leitung", leader=(shared_server.group, shared_server.password))
    await wait_state(leader, "room")
    await shared_lobby_off(leader)
    await open_room(guest, slug, "Gast")
    await wait_state(guest, "room")
    guest_id = await my_id(guest)

    await leader.click("#btn-people")
    row = leader.locator(f'#people li[data-participant="{guest_id}"]')
    await row.locator('button[data-action="mute"]').click()  # the leader's "Mute"
    await wait_for(lambda: _mic_off(guest), 10, "guest muted by request")
    assert "muted your microphone" in (await guest.locator("#notice").text_content() or "")
    await row.locator(".mark.mic-off").wait_for(timeout=10000)

    await row.locator("button", has_text="Remove").click()
    await leader.click("#confirm-yes")
    await wait_state(guest, "ended")
    assert "removed you" in (await guest.locator("#ended-text").text_content() or "")
    assert await guest.locator("#rejoin").is_hidden()
    await wait_for(lambda: _gone(leader, guest_id), 10, "guest gone from the list")


async def shared_lobby_off(leader: Any) -> None:
    await leader.click("#btn-leader")
    await leader.uncheck("#set-lobby")
    await wait_for(lambda: _lobby_off(leader), 5, "lobby off")
    await leader.click("#btn-leader")


async def _lobby_off(page: Any) -> bool:
    return not await page.is_checked("#set-lobby")


async def _mic_off(page: Any) -> bool:
    return not (await page.evaluate("window.kreis.media"))["mic"]


async def test_room_password_prompt(shared_server: Any, people: Any, leaders: list[Any]) -> None:
    slug = "mit-passwort-bitte"
    leader = await start_room(shared_server, slug)
    leaders.append(leader)
    await leader.send({"type": "set_password", "room": slug, "password": "sonnenblume"})
    await leader.expect("room_state")
    guest = await people.page()
    # with the invitation the page may say what is missing (a stranger hears room_closed)
    await open_room(guest, slug, "Gast", invite=shared_server.invite(slug))
    await guest.locator("#room-password").wait_for(timeout=10000)
    assert "has a password" in (await guest.locator("#password-error").text_content() or "")
    await guest.fill("#room-password", "falsch")
    await guest.click("#join")
    await wait_for(
        lambda: _error_says(guest, "password is wrong"), 10, "the wrong password is reported"
    )
    await guest.fill("#room-password", "sonnenblume")
    await guest.click("#join")
    await wait_state(guest, "room")


async def _error_says(page: Any, text: str) -> bool:
    return text in (await page.locator("#password-error").text_content() or "")


async def test_waiting_for_the_leader_then_lobby(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "noch-niemand-da"
    guest = await people.page("de-DE")
    # only a guest with the room's invitation waits for a room that has not started
    await open_room(guest, slug, "Früh", invite=shared_server.invite(slug))
    await wait_state(guest, "waiting_leader")
    assert await guest.locator("#wait-title").text_content() == "Warten auf die Leitung"
    leader = await start_room(shared_server, slug, lobby=True)
    leaders.append(leader)
    await wait_state(guest, "lobby")
    entrant = await next_entrant(leader)
    assert entrant["name"] == "Früh"
    # Media flows in the room while the guest waits: Alice publishes, and Bob, admitted
    # after the guest began to wait, decodes her video. That is the positive control:
    # whatever the server sent towards the lobby would have reached the guest by then,
    # who has been waiting longer than Bob has been in the room.
    alice, bob = await people.page(), await people.page()
    for page, name in ((alice, "Alice"), (bob, "Bob")):
        await open_room(page, slug, name)
        await leader.send({"type": "admit", "room": slug, "id": await entrant_named(leader, name)})
        await wait_state(page, "room")
    alice_id = await my_id(alice)
    await frames_rising(bob, alice_id, "Bob sees Alice")
    assert await state_of(guest) == "lobby"
    assert (await stats(guest))["inbound"] == []
    await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
    await wait_state(guest, "room")
    await frames_rising(guest, alice_id, "the admitted guest sees Alice")


async def entrant_named(leader: Any, name: str, timeout: float = 15) -> str:
    """The id of `name` once it shows in a `lobby_queue` the leader receives."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        queue = await leader.expect("lobby_queue", timeout=max(0.1, left))
        for entrant in queue["entrants"]:
            if entrant["name"] == name:
                return str(entrant["id"])


async def test_network_blip_resumes_without_the_lobby(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "kurz-weg-und-wieder-da"
    leader = await start_room(shared_server, slug, lobby=True)
    leaders.append(leader)
    alice, bob = await people.page(), await people.page()
    sockets: list[Any] = []

    async def relay(ws: Any) -> None:
        server = ws.connect_to_server()
        sockets.append((ws, server))

    await alice.route_web_socket("**/ws", relay)
    for page, name in ((alice, "Alice"), (bob, "Bob")):
        await open_room(page, slug, name)
        entrant = await next_entrant(leader)
        await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
        await wait_state(page, "room")
    alice_id, bob_id = await my_id(alice), await my_id(bob)
    await frames_rising(bob, alice_id, "Bob sees Alice")

    seen_before = len(leader.history)
    page_side, server_side = sockets[-1]
    await server_side.close(code=4000, reason="blip")
    await page_side.close(code=4000, reason="blip")
    await wait_for(lambda: _socket_count(sockets, 2), 20, "Alice opens a new socket")
    await wait_state(alice, "room", 20)
    assert await my_id(alice) == alice_id  # the same participant, not a newcomer
    await frames_rising(bob, alice_id, "Bob sees Alice after the blip")
    await frames_rising(alice, bob_id, "Alice sees Bob after the blip")
    knocks = [
        m for m in leader.history[seen_before:] if m.get("type") == "lobby_queue" and m.get("knock")
    ]
    assert knocks == [], "the resume must not knock at the lobby again"


async def _socket_count(sockets: list[Any], n: int) -> bool:
    return len(sockets) >= n


async def test_language_switch_is_remembered(shared_server: Any, people: Any) -> None:
    page = await people.page("en-US")
    await page.goto("/sprache-wechseln")
    assert await page.locator("#join").text_content() == "Join"
    await page.click("#lang")
    assert await page.locator("#join").text_content() == "Eintreten"
    assert await page.evaluate("document.documentElement.lang") == "de"
    await page.reload()
    assert await page.locator("#join").text_content() == "Eintreten"
    await page.goto("/")
    assert await page.locator("h1").text_content() == "An einem Treffen teilnehmen"
    await page.fill("#room", f"{people.base_url}/Sprache-Wechseln")
    await page.click("#go-form button[type=submit]")
    await page.wait_for_url("**/sprache-wechseln", timeout=5000)


async def test_chat_and_raised_hand(shared_server: Any, people: Any, leaders: list[Any]) -> None:
    slug = "reden-und-melden"
    alice, bob = await alice_and_bob(shared_server, people, leaders, slug)
    alice_id = await my_id(alice)

    text = "<b>nicht fett</b> & gut"
    await alice.click("#btn-chat")
    await alice.fill("#chat-input", text)
    await alice.press("#chat-input", "Enter")
    await wait_for(lambda: _badge(bob), 10, "unread badge at Bob")
    await bob.click("#btn-chat")
    message = bob.locator("#chat-log li").filter(has_text="nicht fett")
    await message.wait_for(timeout=10000)
    assert await message.locator(".chat-text").text_content() == text
    assert await message.locator(".chat-name").text_content() == "Alice"
    assert await bob.locator("#chat-log b").count() == 0

    await alice.click("#btn-hand")
    tile = bob.locator(f'.tile[data-participant="{alice_id}"][data-source="camera"]')
    await tile.locator(".mark.hand").wait_for(timeout=10000)
    await alice.click("#btn-hand")
    await tile.locator(".mark.hand").wait_for(state="detached", timeout=10000)


async def _badge(page: Any) -> bool:
    return await page.locator("#chat-badge").is_visible()


async def test_server_restart_notice_reconnects(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    """`server_restart` makes the client drop its socket, come back after `retry_after`
    and join again with its resume token (here the server itself stays up)."""
    slug = "neustart-angekuendigt"
    leaders.append(await start_room(shared_server, slug))
    alice, bob = await people.page(), await people.page()
    routes: list[Any] = []

    async def relay(ws: Any) -> None:
        ws.connect_to_server()
        routes.append(ws)

    await alice.route_web_socket("**/ws", relay)
    await open_room(alice, slug, "Alice")
    await open_room(bob, slug, "Bob")
    await wait_state(alice, "room")
    await wait_state(bob, "room")
    alice_id = await my_id(alice)
    routes[-1].send('{"type": "server_restart", "retry_after": 1}')
    await wait_for(lambda: _socket_count(routes, 2), 15, "a new socket after the restart notice")
    await wait_state(alice, "room", 15)
    assert await my_id(alice) == alice_id
    await frames_rising(bob, alice_id, "Bob sees Alice after the reconnect")


async def test_leader_locks_and_sets_a_password(shared_server: Any, people: Any) -> None:
    slug = "abschliessen-und-passwort"
    leader = await people.page()
    await open_room(leader, slug, "Leitung", leader=(shared_server.group, shared_server.password))
    await wait_state(leader, "room")
    await leader.click("#btn-leader")
    await leader.check("#set-lock")
    first = await people.page()
    await open_room(first, slug, "Zu spät")
    await wait_for(lambda: _join_error(first, "locked"), 10, "the locked room says so")
    await wait_for(
        lambda: _text(leader, "#lobby-refused", "Turned away at the door so far: 1"),
        10,
        "the leader sees that a knock was turned away",
    )

    await leader.uncheck("#set-lock")
    await leader.fill("#new-password", "kerze-und-tee")
    await leader.click("#password-form button[type=submit]")
    await wait_for(lambda: _text(leader, "#password-state", "has a password"), 10, "password set")
    second = await people.page()
    await open_room(second, slug, "Mit Passwort")
    await second.locator("#room-password").wait_for(timeout=10000)
    await second.fill("#room-password", "kerze-und-tee")
    await second.click("#join")
    await wait_state(second, "lobby")

    await leader.click("#password-clear")
    await wait_for(lambda: _text(leader, "#password-state", "no password"), 10, "password cleared")


async def _join_error(page: Any, text: str) -> bool:
    return text in (await page.locator("#join-error").text_content() or "")


async def _text(page: Any, selector: str, text: str) -> bool:
    return text in (await page.locator(selector).text_content() or "")


async def test_leader_denies_one_and_admits_all(shared_server: Any, people: Any) -> None:
    slug = "einer-nein-alle-ja"
    leader = await people.page()
    await open_room(leader, slug, "Leitung", leader=(shared_server.group, shared_server.password))
    await wait_state(leader, "room")
    unwanted = await people.page("de-DE")
    await open_room(unwanted, slug, "Störer")
    await wait_state(unwanted, "lobby")
    await leader.locator('#lobby-list button[aria-label="Deny Störer"]').click(timeout=10000)
    await wait_state(unwanted, "ended")
    assert "nicht hereingelassen" in (await unwanted.locator("#ended-text").text_content() or "")

    guests = [await people.page() for _ in range(2)]
    for i, guest in enumerate(guests):
        await open_room(guest, slug, f"Gast {i + 1}")
        await wait_state(guest, "lobby")
    await leader.locator("#lobby-list li.entrant").nth(1).wait_for(timeout=10000)
    await leader.click("#admit-all")
    for guest in guests:
        await wait_state(guest, "room")
    assert await leader.locator("#lobby-list li").count() == 0


NEWEST_CONNECTION_PORT = """async () => {
  const live = window.__kreisTestPcs.filter((pc) => pc.connectionState === "connected");
  const report = await live[live.length - 1].getStats();
  let port = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = report.get(s.selectedCandidatePairId);
      port = report.get(pair.remoteCandidateId).port;
    }
  });
  return [live.length, port];
}"""
"""The number of connected peer connections, and the server's UDP port of the newest."""


def drop_udp(port: int, on: bool) -> None:
    """Drops (or stops dropping) every UDP datagram to or from `port` in the test's
    network namespace: the network between a page and one SFU connection breaks."""
    for way in ("--dport", "--sport"):
        rule = ["INPUT", "-p", "udp", way, str(port), "-j", "DROP"]
        subprocess.run(["iptables", "-I" if on else "-D", *rule], check=on, timeout=10)


async def test_failed_peer_connection_is_rebuilt(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    """A peer connection that fails is rebuilt by rejoining with the resume token. The
    failure is real: every datagram between Alice and the server's side of her newest
    connection is dropped (iptables in the test's network namespace), so ICE consent
    runs out in her browser; the page only observes its connections."""
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed")
    slug = "verbindung-repariert-sich"
    leaders.append(await start_room(shared_server, slug))
    alice, bob = await people.page(), await people.page()
    await alice.add_init_script(TRACK_PEER_CONNECTIONS)
    await open_room(alice, slug, "Alice")
    await open_room(bob, slug, "Bob")
    await wait_state(alice, "room")
    await wait_state(bob, "room")
    alice_id, bob_id = await my_id(alice), await my_id(bob)
    await frames_rising(alice, bob_id, "Alice sees Bob")
    live, port = await alice.evaluate(NEWEST_CONNECTION_PORT)
    assert live == 2 and isinstance(port, int), (live, port)
    drop_udp(port, True)
    try:
        await wait_for(
            lambda: alice.evaluate("window.__kreisTestPcs.length >= 4"), 60, "new connections"
        )
    finally:
        drop_udp(port, False)  # the new connections may get the same port again
    await wait_state(alice, "room")
    assert await my_id(alice) == alice_id
    await frames_rising(alice, bob_id, "Alice sees Bob again")
    await frames_rising(bob, alice_id, "Bob sees Alice again")
