"""The Textual application of `kreis console`.

It owns the `ConsoleSession`, the language and the screen stack (login → rooms →
room), forwards session events to the screens and makes sure a knock is never missed:
the terminal bell rings and a notification shows, whatever screen is on top.

Every notification is plain text (`notify` below): knocks carry a stranger's name, and
errors may carry the server's own sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import App
from textual.binding import BindingType
from textual.notifications import SeverityLevel

from app.client import ServerError
from tui.config import ConsoleConfig
from tui.errors import explain
from tui.events import ConnectionChanged, Knock, RoomClosed, ServerNotice, SessionEvent
from tui.i18n import current_lang, set_lang, t
from tui.screens.base import ConsoleHost, KeySpec, Translated, key_bindings
from tui.screens.help import HelpScreen
from tui.screens.login import LoginScreen
from tui.screens.room import RoomScreen
from tui.screens.rooms import RoomsScreen
from tui.session import ConsoleSession
from tui.text import plain

if TYPE_CHECKING:
    from tui.audio import ConsoleAudio


class KreisConsole(App[int]):
    """The moderation console."""

    CSS_PATH = "console.tcss"
    ENABLE_COMMAND_PALETTE = False
    KEYS: ClassVar[list[KeySpec]] = [
        ("question_mark,f1", "help", "key.help", True),
        ("f2", "toggle_language", "key.lang", True),
        ("ctrl+q", "quit", "key.quit", True),
    ]
    BINDINGS: ClassVar[list[BindingType]] = key_bindings(KEYS)

    def __init__(
        self,
        *,
        server_url: str = "",
        group: str = "",
        lang: str = "en",
        session: ConsoleSession | None = None,
        config_path: Path | None = None,
        audio: str | None = None,
        cursor_blink: bool = True,
        live_refresh: bool = True,
        fixed_clock: float | None = None,
    ) -> None:
        super().__init__()
        set_lang(lang)
        self.session = session or ConsoleSession(server_url, lang=current_lang())
        self.session.post = self.post_message
        self.initial_url = server_url or self.session.server_url
        self.initial_group = group
        self.config_path = config_path
        self.audio_wanted = audio
        """None, or the --audio device spec (e.g. "default", "file:MIC.wav:OUT.wav")."""
        self.audio: ConsoleAudio | None = None
        self.cursor_blink = cursor_blink
        """False in snapshot tests, so that screenshots are stable."""
        self.live_refresh = live_refresh
        """Poll the room list; off in snapshot tests."""
        self.fixed_clock = fixed_clock
        """A fixed 'now' for lobby wait times (snapshots); None means the real clock."""

    def on_mount(self) -> None:
        self.title = t("app.title")
        self.push_screen(LoginScreen(self.initial_url, self.initial_group))
        if self.session.status == "online":  # a session handed in already logged in
            self.push_screen(RoomsScreen())
            if self.session.room is not None:
                self.push_screen(RoomScreen())

    async def on_unmount(self) -> None:
        await self._stop_audio()
        await self.session.close()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Shows a notification, always as plain text, whatever `markup` says.

        Screens and widgets call `self.notify()`, which lands here with `markup=True`
        unless they say otherwise. Textual renders markup in a toast, so a knock from
        `[@click=screen.admit]Anna[/]` would become a button that admits its author
        (clicking a toast is how it is dismissed) and `[/]` would crash the console.
        The console's own sentences hold no markup, so nothing is lost by never
        parsing it, and no caller can forget to switch it off.
        """
        del markup
        text, heading = plain(message), plain(title)
        super().notify(text, title=heading, severity=severity, timeout=timeout, markup=False)

    # ------------------------------------------------------------------ navigation

    def logged_in(self, server_url: str, group: str) -> None:
        """Called by the login screen: remember address and group, show the rooms."""
        if self.config_path is not None:
            ConsoleConfig(server_url, group).save(self.config_path)
        self.sub_title = plain(f"{group} @ {self.session.server_url}")
        self.push_screen(RoomsScreen())

    def open_room(self) -> None:
        """Called once the session watches a room: show it (and join its audio)."""
        self.push_screen(RoomScreen())
        if self.audio_wanted:
            self.run_worker(self._start_audio(), group="audio", exclusive=True)

    def left_room(self) -> None:
        """Called when the leader goes back to the room list: leave the room's audio."""
        self.run_worker(self._stop_audio(), group="audio")

    def _pop_to_rooms(self) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, RoomsScreen):
            self.pop_screen()

    # ------------------------------------------------------------------ session events

    @on(SessionEvent)
    def _session_event(self, event: SessionEvent) -> None:
        for screen in list(self.screen_stack):
            if isinstance(screen, Translated):
                screen.on_session(event)
        if isinstance(event, Knock):
            self.bell()
            # The name is a stranger's: plain text (see `notify`), never markup.
            self.notify(
                t("room.knock", name=event.name or "?"),
                severity="warning",
                timeout=10,
                markup=False,
            )
        elif isinstance(event, ConnectionChanged):
            if event.status == "reconnecting":
                self.sub_title = t("conn.reconnecting")
                if event.reason:
                    reason = explain(event.reason)
                    self.notify(
                        t("conn.failed", reason=reason), severity="warning", timeout=4, markup=False
                    )
                else:
                    self.notify(t("conn.reconnecting"), severity="warning", timeout=4, markup=False)
            else:
                self.sub_title = plain(f"{self.session.group} @ {self.session.server_url}")
                self.notify(t("conn.back"), timeout=4, markup=False)
        elif isinstance(event, RoomClosed):
            key = "room.ended" if event.reason == "ended" else "room.gone"
            self.notify(t(key, slug=event.slug), severity="warning", timeout=8, markup=False)
            self.run_worker(self._stop_audio(), group="audio")
            if any(isinstance(s, RoomScreen) for s in self.screen_stack):
                self._pop_to_rooms()
        elif isinstance(event, ServerNotice):
            self.notify(
                explain(event.code, event.message, event.retry_after),
                severity="error",
                markup=False,
            )

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_language(self) -> None:
        lang = set_lang("en" if current_lang() == "de" else "de")
        self.session.lang = lang
        self.title = t("app.title")
        for screen in self.screen_stack:
            if isinstance(screen, Translated):
                screen.retranslate()
        self.refresh_bindings()

    # ------------------------------------------------------------------ audio

    async def _start_audio(self) -> None:
        from tui.audio import AudioError, ConsoleAudio, open_backend

        room = self.session.room
        if room is None:
            return
        await self._stop_audio()
        try:
            backend = open_backend(self.audio_wanted)
        except AudioError as exc:
            self.notify(
                t("audio.none", reason=str(exc)), severity="warning", timeout=8, markup=False
            )
            return
        server_url, group, password = self.session.audio_credentials()
        audio = ConsoleAudio(server_url, group, password, backend, lang=current_lang())
        self.audio = audio
        try:
            await audio.start(room.slug)
        except Exception as exc:  # audio is optional: say so and carry on
            if isinstance(exc, ServerError):  # e.g. console_not_leader, room_closed
                reason = explain(exc.code, str(exc.message.get("message") or ""), exc.retry_after)
            else:
                reason = type(exc).__name__
            self.notify(t("audio.failed", reason=reason), severity="warning", markup=False)
            self.audio = None
            await audio.stop()
            return
        self.notify(t("audio.on"), markup=False)

    async def _stop_audio(self) -> None:
        audio, self.audio = self.audio, None
        if audio is not None:
            await audio.stop()


if TYPE_CHECKING:

    def _is_a_host(console: KreisConsole) -> ConsoleHost:
        return console  # mypy checks that the app gives screens what ConsoleHost promises
