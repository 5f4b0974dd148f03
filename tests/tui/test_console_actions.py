"""More of the console against a real server: login failures the leader must
understand, and the room actions beyond the main flow (admit all, a message to one
waiting guest, chat, mute, co-leader, lock, lobby, dial-in, E2EE with phones present).
All driven by key presses; every effect checked on the other side.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from test_console_flow import SIZE, SLUG, console, guest, log_in_and_start_room, type_text, wait_for

from app.client import KreisClient
from tui.app import KreisConsole
from tui.screens.confirm import ConfirmScreen
from tui.screens.prompt import PromptScreen
from tui.screens.rooms import RoomsScreen
from tui.widgets.lobby_queue import LobbyQueue
from tui.widgets.participants_table import ParticipantsTable

pytestmark = pytest.mark.tui


async def test_rate_limited_login_says_how_long_to_wait(kreis_server: Any, tmp_path: Path) -> None:
    app = console(kreis_server, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        error = app.screen.query_one("#login-error")
        for _ in range(8):
            await type_text(pilot, "falsch")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Connecting" not in str(error.render()))
            if "Too many attempts" in str(error.render()):
                break
            app.screen.query_one("#password").value = ""  # type: ignore[attr-defined]
        text = str(error.render())
        assert "Too many attempts" in text and "seconds" in text, text
        assert any(ch.isdigit() for ch in text)
        assert not isinstance(app.screen, RoomsScreen)


def self_signed(tmp: Path) -> ssl.SSLContext:
    from kreis_server import self_signed_cert

    cert, key = self_signed_cert(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_untrusted_certificate_is_explained(tmp_path: Path) -> None:
    from kreis_server import free_port

    runner = web.AppRunner(web.Application())
    await runner.setup()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=self_signed(Path(tmp)))
        await site.start()
    try:
        app = KreisConsole(
            server_url=f"https://127.0.0.1:{port}", group="g", lang="en", cursor_blink=False
        )
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await type_text(pilot, "irrelevant")
            await pilot.press("enter")
            error = app.screen.query_one("#login-error")
            await wait_for(pilot, lambda: "certificate" in str(error.render()))
    finally:
        await runner.cleanup()


async def phone_caller(server: Any, pin: str) -> KreisClient:
    gateway = KreisClient(server.url, kind="gateway")
    await gateway.connect()
    await gateway.request({"type": "gateway_auth", "secret": server.gateway_secret}, "gateway_ok")
    answer = await gateway.request(
        {"type": "dial_in", "pin": pin, "caller": "…47"}, "lobby_status", "joined"
    )
    assert answer["type"] == "lobby_status" and answer["state"] == "waiting", answer
    return gateway


async def test_more_room_actions_by_keys(kreis_server: Any, tmp_path: Path) -> None:
    app = console(kreis_server, tmp_path)
    clients: list[KreisClient] = []
    try:
        async with app.run_test(size=SIZE) as pilot:
            await log_in_and_start_room(pilot, app, kreis_server.password)
            room = app.session.room
            assert room is not None

            # A private message to one waiting guest.
            fritz, _ = await guest(kreis_server, "Fritz")
            clients.append(fritz)
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            await pilot.press("1", "w")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
            await type_text(pilot, "Gleich geht es los")
            await pilot.press("enter")
            line = await fritz.expect("chat")
            assert line["text"] == "Gleich geht es los" and line["lobby"] is True
            # ... and the answer from the lobby reaches the console's chat, marked as such.
            await fritz.send({"type": "chat", "text": "Danke!"})
            chat_log = app.screen.query_one("#chat-log")

            def chat_lines() -> str:
                return "\n".join(line.text for line in chat_log.lines)  # type: ignore[attr-defined]

            await wait_for(pilot, lambda: "(lobby) Fritz: Danke!" in chat_lines())

            # Admit all, after the confirmation.
            greta, _ = await guest(kreis_server, "Greta")
            clients.append(greta)
            await wait_for(pilot, lambda: len(room.entrants) == 2)
            await pilot.press("A")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            for client in (fritz, greta):
                assert (await client.expect("joined"))["role"] == "guest"
            await wait_for(pilot, lambda: len(room.participants) == 2)

            # Chat to the room.
            await pilot.press("c")
            await type_text(pilot, "Willkommen")
            await pilot.press("enter", "escape")
            assert (await greta.expect("chat"))["text"] == "Willkommen"
            await wait_for(pilot, lambda: any(m.get("text") == "Willkommen" for m in room.chat))

            # Hands: Greta's goes up first, then Fritz's; the table numbers them in that
            # order, and "h" lowers the selected person's hand.
            people = app.screen.query_one(ParticipantsTable)
            for client in (greta, fritz):
                await client.send({"type": "hand", "raised": True})
                await wait_for(
                    pilot,
                    lambda c=client: (
                        sum(bool(p.get("hand")) for p in room.participants)
                        == (1 if c is greta else 2)
                    ),
                )

            def hand_cell(name: str) -> str:
                row = next(i for i, p in enumerate(room.participants) if p["name"] == name)
                return str(people.table.get_row_at(row)[5])

            await wait_for(pilot, lambda: hand_cell("Greta") == "✋ 1")
            assert hand_cell("Fritz") == "✋ 2"
            await pilot.press("2")
            first = room.participants[0]
            target = fritz if first["name"] == "Fritz" else greta
            await pilot.press("h")
            await wait_for(
                pilot,
                lambda: not next(p for p in room.participants if p["id"] == first["id"])["hand"],
            )
            other = "Greta" if first["name"] == "Fritz" else "Fritz"
            await wait_for(pilot, lambda: hand_cell(other) == "✋ 1")

            # Ask the first participant to mute (a request they decide on), mute them
            # outright, then make them co-leader.
            await pilot.press("m")
            asked = await target.expect("mute_request")
            assert asked["room"] == SLUG and asked["ask"] is True, asked
            await pilot.press("M")
            muted = await target.expect("mute_request")
            assert muted["ask"] is False, muted
            # Mute everyone (after the question): everyone whose microphone is on.
            for client in (fritz, greta):
                await client.send({"type": "media_state", "mic": True})
            await wait_for(pilot, lambda: all(p.get("mic") for p in room.participants))
            await pilot.press("S")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            for client in (fritz, greta):
                assert (await client.expect("mute_request"))["ask"] is False
            await pilot.press("p")
            await wait_for(pilot, lambda: room.participants[0].get("role") == "coleader")

            # Lock, lobby off, dial-in on (number and PIN in the header).
            await pilot.press("l")
            await wait_for(pilot, lambda: room.settings.get("locked"))
            late, answer = await guest(kreis_server, "Zu spät")
            clients.append(late)
            assert answer["type"] == "error" and answer["code"] == "room_locked"
            # The leader sees that a knock was turned away (not who).
            lobby = app.screen.query_one(LobbyQueue).query_one(".lobby-empty")
            await wait_for(pilot, lambda: "Turned away at the door: 1" in str(lobby.render()))
            await pilot.press("l", "o")
            await wait_for(pilot, lambda: not room.settings.get("locked"))
            await wait_for(pilot, lambda: not room.settings.get("lobby"))
            await pilot.press("o", "i")
            await wait_for(pilot, lambda: room.settings.get("dial_in") and room.dial_in_pin)
            await wait_for(pilot, lambda: room.settings.get("lobby"))
            header = str(app.screen.query_one("#room-header").render())
            assert str(room.dial_in_pin) in header and "+49 30 1234567" in header

            # A phone caller waits in the lobby, is admitted; E2EE on asks first.
            phone = await phone_caller(kreis_server, str(room.dial_in_pin))
            clients.append(phone)
            await wait_for(pilot, lambda: len(room.entrants) == 1)
            await pilot.press("1", "a")
            assert (await phone.expect("joined"))["role"] == "phone"
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            assert (await phone.expect("removed"))["room"] == SLUG
            await wait_for(pilot, lambda: room.settings.get("e2ee"))
            assert not room.settings.get("dial_in")
    finally:
        for client in clients:
            await client.close()
