"""The room screen: lobby queue, participants, chat and every leader action.

The leader watches the room (not a media participant unless `--audio`). Everything
works from the keyboard; the footer shows the keys and `?` explains them. Lists are
redrawn from the session's `RoomView` whenever a `RoomChanged` event arrives, so
nothing is lost when the connection drops and comes back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input

from tui.errors import ConsoleError
from tui.events import ConnectionChanged, RoomChanged, SessionEvent
from tui.i18n import t
from tui.screens.base import ConsoleScreen, KeySpec
from tui.screens.confirm import ConfirmScreen, RemoveChoice, RemoveScreen
from tui.screens.prompt import PromptScreen
from tui.session import RoomView
from tui.text import sentence
from tui.widgets.chat_panel import ChatPanel
from tui.widgets.key_bar import KeyBar
from tui.widgets.lobby_queue import LobbyQueue
from tui.widgets.participants_table import ParticipantsTable
from tui.widgets.room_header import RoomHeader


class RoomScreen(ConsoleScreen):
    """Running one room."""

    KEYS: ClassVar[list[KeySpec]] = [
        ("a", "admit", "key.admit", True),
        ("d", "deny", "key.deny", True),
        ("A", "admit_all", "key.admit_all", True),
        ("w", "whisper", "key.whisper", True),
        ("m", "mute", "key.mute", True),
        ("M", "mute_now", "key.mute_now", True),
        ("S", "mute_all", "key.mute_all", True),
        ("h", "lower_hand", "key.lower_hand", True),
        ("r", "remove", "key.remove", True),
        ("p", "promote", "key.promote", True),
        ("l", "lock", "key.lock", True),
        ("o", "lobby", "key.lobby", True),
        ("k", "password", "key.password", True),
        ("e", "e2ee", "key.e2ee", True),
        ("i", "dial_in", "key.dial_in", True),
        ("x", "end", "key.end", True),
        ("c", "chat", "key.chat", True),
        ("u", "copy_url", "key.copy", True),
        ("1", "focus_lobby", "key.focus_lobby", False),
        ("2", "focus_people", "key.focus_people", False),
        ("escape", "back", "key.back", True),
    ]

    def compose(self) -> ComposeResult:
        yield RoomHeader(id="room-header")
        with Horizontal(id="room-lists"):
            yield LobbyQueue(id="lobby", clock=self.console.fixed_clock)
            yield ParticipantsTable(id="people")
        yield ChatPanel(id="chat", utc=self.console.fixed_clock is not None)
        yield KeyBar()

    def on_mount(self) -> None:
        self.ready = True
        self.redraw()
        self.query_one("#lobby-table", DataTable).focus()
        if self.console.fixed_clock is None:
            self.set_interval(5, self._tick)

    def _tick(self) -> None:
        """Keeps the lobby's waiting times current."""
        room = self.room
        if room is not None and room.entrants:
            self.redraw("lobby")

    @property
    def room(self) -> RoomView | None:
        return self.console.session.room

    # ------------------------------------------------------------------ drawing

    def redraw(self, what: str = "all") -> None:
        room = self.room
        if room is None or not getattr(self, "ready", False):
            return
        try:
            self._draw(room, what)
        except NoMatches:
            # A session event can arrive while Textual is taking the screen's
            # widgets down (the console quitting or leaving the room). There is
            # nothing left to draw on; the state stays in the session, and the
            # next screen draws it in full.
            return

    def _draw(self, room: RoomView, what: str) -> None:
        if what in ("all", "state"):
            self.query_one(RoomHeader).show(room, self.console.session.status)
        if what in ("all", "lobby"):
            self.query_one(LobbyQueue).show(room.entrants, room.refused)
        if what in ("all", "participants"):
            self.query_one(ParticipantsTable).show(room.participants)
        if what in ("all", "chat"):
            names = {str(p.get("id")): str(p.get("name")) for p in room.participants}
            names.update({str(e.get("id")): str(e.get("name")) for e in room.entrants})
            chat = self.query_one(ChatPanel)
            if what == "all":
                chat.redraw(list(room.chat), names, room.chat_total)
            else:
                chat.show(list(room.chat), names, room.chat_total)

    def relabel(self) -> None:
        if not getattr(self, "ready", False):
            return
        self.query_one(LobbyQueue).relabel()
        self.query_one(ParticipantsTable).relabel()
        self.query_one(ChatPanel).relabel()
        self.redraw()

    def on_session(self, event: SessionEvent) -> None:
        if isinstance(event, RoomChanged):
            self.redraw(event.what)
        elif isinstance(event, ConnectionChanged):
            self.redraw("state")

    # ------------------------------------------------------------------ helpers

    def _entrant(self) -> dict[str, Any] | None:
        entrant = self.query_one(LobbyQueue).selected
        if entrant is None:
            self.notify(t("room.select_entrant"), severity="warning", markup=False)
        return entrant

    def _participant(self) -> dict[str, Any] | None:
        person = self.query_one(ParticipantsTable).selected
        if person is None:
            self.notify(t("room.select_participant"), severity="warning", markup=False)
        return person

    @work(group="command")
    async def _run(self, command: Callable[[], Awaitable[None]]) -> None:
        try:
            await command()
        except ConsoleError as exc:
            self.notify(exc.explain(), severity="error", markup=False)

    def _confirmed(self, question: Text, command: Callable[[], Awaitable[None]]) -> None:
        """Asks `question`; runs `command` only on yes."""

        def answered(yes: bool | None) -> None:
            if yes:
                self._run(command)

        self.app.push_screen(ConfirmScreen(question), answered)

    def _setting(self, key: str) -> bool:
        room = self.room
        return bool(room and room.settings.get(key))

    # ------------------------------------------------------------------ lobby

    def action_admit(self) -> None:
        entrant = self._entrant()
        if entrant is not None:
            pid = str(entrant["id"])
            self._run(lambda: self.console.session.admit(pid))

    def action_deny(self) -> None:
        entrant = self._entrant()
        if entrant is not None:
            pid = str(entrant["id"])
            self._run(lambda: self.console.session.deny(pid))

    def action_admit_all(self) -> None:
        room = self.room
        if room is None or not room.entrants:
            self.notify(t("room.lobby_empty"), markup=False)
            return

        question = sentence("confirm.admit_all", count=len(room.entrants))
        self._confirmed(question, self.console.session.admit_all)

    def action_whisper(self) -> None:
        entrant = self._entrant()
        if entrant is None:
            return
        pid = str(entrant["id"])

        def answered(text: str | None) -> None:
            if text and text.strip():
                message = text.strip()
                self._run(lambda: self.console.session.whisper(pid, message))

        question = sentence("prompt.whisper", name=entrant.get("name", ""))
        self.app.push_screen(PromptScreen(question, max_length=2000, allow_empty=False), answered)

    # ------------------------------------------------------------------ participants

    def action_mute(self) -> None:
        """Asks the selected person to mute: a request they accept or decline."""
        person = self._participant()
        if person is not None:
            pid = str(person["id"])
            self._run(lambda: self.console.session.mute_request(pid, ask=True))
            self.notify(t("notice.mute_asked", name=str(person.get("name", ""))), markup=False)

    def action_mute_now(self) -> None:
        """Switches the selected person's microphone off (they can switch it on again)."""
        person = self._participant()
        if person is not None:
            pid = str(person["id"])
            self._run(lambda: self.console.session.mute_request(pid, ask=False))

    def action_mute_all(self) -> None:
        room = self.room
        if room is None or not room.participants:
            self.notify(t("room.nobody_to_mute"), markup=False)
            return

        self._confirmed(sentence("confirm.mute_all"), self.console.session.mute_all)

    def action_lower_hand(self) -> None:
        person = self._participant()
        if person is None:
            return
        if not person.get("hand"):
            self.notify(t("notice.no_hand", name=str(person.get("name", ""))), markup=False)
            return
        pid = str(person["id"])
        self._run(lambda: self.console.session.lower_hand(pid))

    def action_remove(self) -> None:
        person = self._participant()
        if person is None:
            return
        pid = str(person["id"])

        def answered(choice: RemoveChoice | None) -> None:
            if choice is not None:
                bar = choice == "bar"
                self._run(lambda: self.console.session.remove(pid, bar))

        self.app.push_screen(RemoveScreen(str(person.get("name", ""))), answered)

    def action_promote(self) -> None:
        person = self._participant()
        if person is not None:
            pid = str(person["id"])
            self._run(lambda: self.console.session.promote(pid))

    # ------------------------------------------------------------------ settings

    def action_lock(self) -> None:
        locked = not self._setting("locked")
        self._run(lambda: self.console.session.set_lock(locked))

    def action_lobby(self) -> None:
        on = not self._setting("lobby")
        self._run(lambda: self.console.session.set_lobby(on))

    def action_dial_in(self) -> None:
        on = not self._setting("dial_in")
        self._run(lambda: self.console.session.set_dial_in(on))

    def action_password(self) -> None:
        def answered(value: str | None) -> None:
            if value is None:
                return
            if value and len(value) < 4:
                self.notify(t("password.short"), severity="warning", markup=False)
                return
            password = value or None

            async def send() -> None:
                await self.console.session.set_password(password)
                self.notify(t("password.set") if password else t("password.cleared"), markup=False)

            self._run(send)

        self.app.push_screen(
            PromptScreen(sentence("prompt.password"), password=True, max_length=128), answered
        )

    def action_e2ee(self) -> None:
        self._e2ee(not self._setting("e2ee"))

    @work(group="command")
    async def _e2ee(self, on: bool) -> None:
        try:
            await self.console.session.set_e2ee(on)
        except ConsoleError as exc:
            if exc.code != "phones_present":
                self.notify(exc.explain(), severity="error", markup=False)
                return
            if await self.app.push_screen_wait(ConfirmScreen(sentence("confirm.phones"))):
                try:
                    await self.console.session.set_e2ee(on, drop_phones=True)
                except ConsoleError as again:
                    self.notify(again.explain(), severity="error", markup=False)

    def action_end(self) -> None:
        room = self.room
        if room is None:
            return

        self._confirmed(sentence("confirm.end", slug=room.slug), self.console.session.end_room)

    # ------------------------------------------------------------------ chat, focus, nav

    def action_chat(self) -> None:
        self.query_one("#chat-input", Input).focus()

    @on(ChatPanel.Send)
    def _send_chat(self, event: ChatPanel.Send) -> None:
        text = event.text
        self._run(lambda: self.console.session.chat(text))

    def action_focus_lobby(self) -> None:
        self.query_one("#lobby-table", DataTable).focus()

    def action_focus_people(self) -> None:
        self.query_one("#people-table", DataTable).focus()

    def action_copy_url(self) -> None:
        room = self.room
        if room is not None:
            self.app.copy_to_clipboard(room.url)
            self.notify(t("copied", url=room.url), markup=False)

    def action_back(self) -> None:
        focused = self.focused
        if isinstance(focused, Input):
            self.action_focus_lobby()
            return
        self._run(self.console.session.unwatch)
        self.console.left_room()
        self.dismiss()
