"""The login screen: server address, group and group password.

Address and group come from the remembered config; the password field always starts
empty. Failures are explained in a sentence the leader can act on: wrong password,
server unreachable, certificate not trusted, too many attempts (with the wait time).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.widgets import Button, Input, Label, Static

from tui.errors import ConsoleError
from tui.i18n import t
from tui.screens.base import ConsoleScreen, KeySpec
from tui.text import as_text
from tui.widgets.key_bar import KeyBar


class LoginScreen(ConsoleScreen):
    """Asks for the server, the group and the password, then logs in."""

    DEFAULT_CSS = """
    LoginScreen {
        align: center middle;
    }
    LoginScreen #login-box {
        width: 80;
        height: auto;
        border: round $primary;
        padding: 1 2;
    }
    LoginScreen #login-title {
        text-style: bold;
        margin-bottom: 1;
    }
    LoginScreen #login-intro {
        color: $text-muted;
        margin-bottom: 1;
    }
    LoginScreen Label {
        margin-top: 1;
    }
    LoginScreen #login-error {
        color: $error;
        text-style: bold;
        margin-top: 1;
        height: auto;
    }
    LoginScreen #login {
        margin-top: 1;
        width: 100%;
    }
    """
    KEYS: ClassVar[list[KeySpec]] = []

    def __init__(self, server_url: str = "", group: str = "") -> None:
        super().__init__()
        self.initial_url = server_url
        self.initial_group = group

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="login-box"):
            yield Static(id="login-title")
            yield Static(id="login-intro")
            yield Label(id="label-server")
            yield Input(self.initial_url, id="server", placeholder="https://")
            yield Label(id="label-group")
            yield Input(self.initial_group, id="group")
            yield Label(id="label-password")
            yield Input(id="password", password=True)
            yield Static(id="login-error")
            yield Button(id="login", variant="primary")
        yield KeyBar()

    def on_mount(self) -> None:
        for each in self.query(Input):
            each.cursor_blink = self.console.cursor_blink
        self.relabel()
        for selector in ("#server", "#group", "#password"):
            widget = self.query_one(selector, Input)
            if not widget.value:
                widget.focus()
                break

    def relabel(self) -> None:
        self.query_one("#login-title", Static).update(t("login.title"))
        self.query_one("#login-intro", Static).update(t("login.intro"))
        self.query_one("#label-server", Label).update(t("login.server"))
        self.query_one("#label-group", Label).update(t("login.group"))
        self.query_one("#label-password", Label).update(t("login.password"))
        self.query_one("#login", Button).label = t("login.submit")

    def show_error(self, text: str) -> None:
        """Shows `text` as text: it may hold the server's own sentence (`err.other`)."""
        self.query_one("#login-error", Static).update(as_text(text))

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        if event.input.id == "password":
            self._submit()
        else:
            self.focus_next()

    @on(Button.Pressed, "#login")
    def _submit(self) -> None:
        url = self.query_one("#server", Input).value.strip()
        group = self.query_one("#group", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not (url and group and password):
            self.show_error(t("login.missing"))
            return
        self.show_error(t("login.busy"))
        self.query_one("#login", Button).disabled = True
        self._login(url, group, password)

    @work(exclusive=True, group="login")
    async def _login(self, url: str, group: str, password: str) -> None:
        try:
            await self.console.session.login(group, password, server_url=url)
        except ConsoleError as exc:
            self.show_error(exc.explain())
            self.query_one("#login", Button).disabled = False
            self.query_one("#password", Input).focus()
            return
        self.query_one("#password", Input).value = ""
        self.show_error("")
        self.query_one("#login", Button).disabled = False
        self.console.logged_in(url, group)
