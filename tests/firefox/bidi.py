"""Debian's Firefox ESR driven over WebDriver BiDi, with no Node and no geckodriver.

Firefox speaks BiDi itself (`--remote-debugging-port`): `launch_firefox` starts it
headless with a fresh profile whose prefs allow WebRTC on loopback (the test namespace
has nothing else), fake camera and microphone, and no background traffic; `Firefox`
is a small client for the few BiDi commands the tests need. The process is always
killed and the profile removed at the end, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FIREFOX = "/usr/bin/firefox-esr"
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 20.0

PREFS: dict[str, bool | int | str] = {
    # WebRTC on loopback: the namespace has only 127.0.0.1, which Firefox leaves out of
    # ICE by default, and mDNS host names could not resolve there.
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.link_local": True,
    "media.peerconnection.ice.default_address_only": False,
    "media.peerconnection.ice.no_host": False,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # Fake camera and microphone, no permission prompt, media may play unasked.
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # Without this a fake device does not count as "capturing", and a page that is not
    # capturing gets only the default route's address for ICE: 0.0.0.0 in the namespace,
    # so no usable UDP candidate at all (found by experiment, Firefox 153).
    "media.navigator.permission.fake": True,
    "media.autoplay.default": 0,
    # Web Audio (the tests' FFT of what a page hears) may start without a click: else
    # AudioContext.resume() stays pending in a page nobody clicked.
    "media.autoplay.block-webaudio": False,
    # No sound card in CI: a real audio backend leaves every AudioContext "suspended"
    # for ever; Firefox's mock backend runs it (the fake microphone then measures as
    # its 1 kHz tone; found by experiment, Firefox ESR on Debian bookworm).
    "media.cubeb.force_mock_context": True,
    # Nothing in the background: no update, telemetry, safebrowsing or portal checks.
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.newtabpage.enabled": False,
    "browser.aboutwelcome.enabled": False,
    "browser.region.network.url": "",
    "browser.search.update": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "remote.prefs.recommended": True,
    "intl.accept_languages": "en-US",
}


class BidiError(RuntimeError):
    """A BiDi command failed, or a script threw in the page."""


def user_js(prefs: dict[str, bool | int | str]) -> str:
    return "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())


class Firefox:
    """One BiDi session with a running Firefox; commands are awaited with a timeout."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self.waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif data.get("type") == "event":
                self.events.append(data)
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(BidiError("the BiDi connection closed"))

    async def command(
        self, method: str, params: dict[str, Any], timeout: float = COMMAND_TIMEOUT
    ) -> dict[str, Any]:
        command_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[command_id] = future
        await self.ws.send_str(json.dumps({"id": command_id, "method": method, "params": params}))
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self.waiting.pop(command_id, None)
        if reply.get("type") == "error":
            raise BidiError(f"{method}: {reply.get('error')}: {reply.get('message')}")
        result: dict[str, Any] = reply["result"]
        return result

    async def new_tab(self) -> Tab:
        """A fresh top-level browsing context (tab); each tab gets its own devices."""
        created = await self.command("browsingContext.create", {"type": "tab"})
        return Tab(self, created["context"])

    async def close(self) -> None:
        """Asks Firefox to quit (the caller still kills it: the quit is not waited for)."""
        with contextlib.suppress(Exception):
            await self.command("browser.close", {}, timeout=5)
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader


class Tab:
    """A browsing context: navigate, and run scripts whose results come back as JSON."""

    def __init__(self, firefox: Firefox, context: str) -> None:
        self.firefox = firefox
        self.context = context

    async def goto(self, url: str) -> None:
        await self.firefox.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    async def evaluate(self, expression: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """Evaluates `expression` (awaiting a promise) and returns the value as JSON.

        The value goes through JSON.stringify in the page, so plain objects and arrays
        arrive as Python dicts and lists (BiDi's own serialisation is far more verbose).
        """
        wrapped = f"(async () => JSON.stringify(await ({expression})) ?? null)()"
        result = await self.firefox.command(
            "script.evaluate",
            {
                "expression": wrapped,
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
                # as if a person had just clicked: the scripts press the page's buttons
                "userActivation": True,
            },
            timeout=timeout,
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"{expression!r} threw: {details.get('text')}")
        value = result["result"]
        if value.get("type") != "string":
            return None
        return json.loads(value["value"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.firefox.command("browsingContext.close", {"context": self.context})


@contextlib.asynccontextmanager
async def launch_firefox(
    extra_prefs: dict[str, bool | int | str] | None = None,
) -> AsyncIterator[Firefox]:
    """Starts headless Firefox with a temporary profile and opens a BiDi session."""
    profile = Path(tempfile.mkdtemp(prefix="kreis-firefox-"))
    (profile / "user.js").write_text(user_js({**PREFS, **(extra_prefs or {})}))
    log = open(profile / "firefox.log", "w+b")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [
            FIREFOX,
            "--headless",
            "--no-remote",
            "--profile",
            str(profile),
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_firefox_env(profile),
        start_new_session=True,  # its own process group: the content processes go too
    )
    session: aiohttp.ClientSession | None = None
    firefox: Firefox | None = None
    try:
        url = await _bidi_url(process, profile / "firefox.log")
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url + "/session", timeout=aiohttp.ClientWSTimeout(10))
        firefox = Firefox(ws)
        # A cold Firefox on a busy 2-core machine can take long to open its first session.
        await firefox.command("session.new", {"capabilities": {}}, timeout=120)
        yield firefox
    finally:
        if firefox is not None:
            await firefox.close()
        if session is not None:
            await session.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


async def _bidi_url(process: subprocess.Popen[bytes], log: Path) -> str:
    """Reads "WebDriver BiDi listening on ws://127.0.0.1:PORT" from Firefox's output."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"WebDriver BiDi listening on (ws://[\d.:]+)", text)
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise BidiError(f"firefox exited ({process.returncode}):\n{text[-2000:]}")
        await asyncio.sleep(0.1)
    raise BidiError("firefox did not open its BiDi port:\n" + log.read_text(errors="replace"))


def _firefox_env(profile: Path) -> dict[str, str]:
    """A clean environment; MOZ_LOG* is passed through for debugging ICE
    (e.g. MOZ_LOG=nicer:5 MOZ_LOG_FILE=/tmp/ff.log)."""
    env = {"HOME": str(profile), "PATH": "/usr/bin:/bin", "MOZ_CRASHREPORTER_DISABLE": "1"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("MOZ_LOG")})
    return env
