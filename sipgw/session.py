"""One phone call's life on the asyncio side: greeting, PIN, lobby, meeting, goodbye.

`CallSession.run()` is the whole flow as straight-line code. It never touches pjsua2:
it plays prompts through the call's `CallAudio`, reads digits from `on_dtmf`, ends the
call through the `hangup` coroutine it was given, and talks to the room only through
a `RoomLink`. That keeps it testable with fakes and keeps one call's failure inside
its own task: the gateway cancels a session when its call ends, and `run()` always
closes its link.

Privacy: the session knows the caller's number only as lockout keys (keyed hashes,
which the server counts wrong PINs against) and the label `…47`; it logs neither, nor
the PIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sipgw.announce import Prompt, Prompts
from sipgw.audio import CallAudio, RoomMix, WaitingTone
from sipgw.errors import LinkError
from sipgw.link import CallerLabel, DialIn, LinkEvent, RoomLink
from sipgw.lockout import CallerKeys

log = logging.getLogger(__name__)

_REFUSAL = {"locked": 403, "unavailable": 503}
"""The final answer to a call that was never answered, by outcome (else 480)."""


@dataclass(frozen=True)
class SessionSettings:
    """The parts of the configuration a session needs."""

    pin_length: int = 9
    pin_tries: int = 3
    language: str = "de"
    """`de`, `en` or `choose`."""
    first_digit_timeout: float = 15.0
    """Seconds after the prompt ended to wait for the first digit."""
    digit_timeout: float = 8.0
    """Seconds to wait for each further digit."""


class CallSession:
    """Runs one call; created by the gateway when pjsip has answered it."""

    def __init__(
        self,
        *,
        audio: CallAudio,
        answer: Callable[[int], Awaitable[None]],
        hangup: Callable[[int], Awaitable[None]],
        link: RoomLink,
        prompts: Prompts,
        keys: CallerKeys,
        label: CallerLabel,
        settings: SessionSettings,
    ) -> None:
        self.audio = audio
        self._answer = answer
        self._hangup = hangup
        self.answered = False
        """The call got its 200 (before: ringing, or early media for a locked caller)."""
        self.link = link
        self.prompts = prompts
        self.keys = keys
        self.label = label
        self.settings = settings
        self.lang = settings.language if settings.language != "choose" else "de"
        self._digits: asyncio.Queue[str] = asyncio.Queue()
        self._events: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self.outcome = "running"
        """How the call ended, for tests and metrics (never personal)."""
        self.muted = False
        self.hand = False

    # ----------------------------------------------------------------- input

    def on_dtmf(self, digit: str) -> None:
        """A digit from the caller (RFC 4733 or SIP INFO); called on the event loop."""
        self._digits.put_nowait(digit)

    async def play(self, prompt: Prompt, wait: bool = True) -> None:
        """Queues a prompt; with `wait`, returns when it has been heard (or cut)."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def finished() -> None:  # on the media thread
            loop.call_soon_threadsafe(settle)

        self.audio.play(prompt.pcm, finished)
        if wait:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done, prompt.seconds + 3)

    def prompt(self, name: str) -> Prompt:
        return self.prompts.get(self.lang, name)

    # ----------------------------------------------------------------- flow

    async def run(self) -> str:
        """The whole call; returns the outcome and always hangs up and closes the link."""
        try:
            self.outcome = await self._flow()
        except asyncio.CancelledError:
            if self.outcome == "running":
                self.outcome = "hung_up"
            raise
        except LinkError:
            log.warning("the server could not be reached for a call")
            self.outcome = "unavailable"
            with contextlib.suppress(Exception):
                await self.play(self.prompt("unavailable"))
        except Exception:
            log.exception("a call failed")
            self.outcome = "failed"
        finally:
            if self._pump is not None:
                self._pump.cancel()
            with contextlib.suppress(Exception):
                await self.link.close()
            with contextlib.suppress(Exception):
                # An unanswered call ends with a final error, never a billable 200.
                await self._hangup(200 if self.answered else _REFUSAL.get(self.outcome, 480))
        return self.outcome

    async def _flow(self) -> str:
        # The server's lockout decides while the phone rings: a locked caller hears
        # why as early media (183) and gets a 403, never a 200 it would be billed for.
        await self.link.connect()
        if await self.link.check(self.keys) > 0:
            await self._answer(183)
            await self.play(self.prompts.both("locked"))
            return "locked"
        await self._answer(200)
        self.answered = True
        if self.settings.language == "choose":
            await self._choose_language()
        admitted = await self._enter_pin()
        if admitted is None:
            return self.outcome
        if not admitted:
            self.audio.set_background(WaitingTone())
            await self.play(self.prompt("lobby"), wait=False)
            self._pump = asyncio.create_task(self._pump_events())
            verdict = await self._events.get()
            self.audio.stop_prompts()
            self.audio.set_background(None)
            if verdict is not LinkEvent.ADMITTED:
                return await self._goodbye(verdict)
        else:
            self._pump = asyncio.create_task(self._pump_events())
        return await self._meeting()

    async def _choose_language(self) -> None:
        await self.play(self.prompts.both("choose_language"), wait=False)
        try:
            digit = await asyncio.wait_for(self._digits.get(), 12)
        except TimeoutError:
            digit = ""
        self.audio.stop_prompts()
        self.lang = "en" if digit == "2" else "de"

    async def _enter_pin(self) -> bool | None:
        """PIN tries; True = admitted directly, False = in the lobby, None = call over."""
        greeting = self.prompt("welcome")
        silent = 0
        for attempt in range(self.settings.pin_tries):
            pin = await self._read_pin(greeting if attempt == 0 else self.prompt("pin_wrong"))
            silent = 0 if pin else silent + 1
            if silent >= 2:
                # Nobody types: a scanner or a wrong number. Free the call slot (the
                # gateway has only a few) instead of prompting on.
                self.outcome = "silent"
                return None
            if pin:
                # The server counts the try (per call, caller, source and dialled
                # number) and says `RATE_LIMITED` once any of them is locked.
                result = await self.link.dial_in(pin, self.label, self.keys)
                if result.outcome is DialIn.LOBBY or result.outcome is DialIn.ADMITTED:
                    return result.outcome is DialIn.ADMITTED
                if result.outcome is DialIn.RATE_LIMITED:
                    await self.play(self.prompt("locked"))
                    self.outcome = "locked"
                    return None
            # An empty entry counts as a try but never reaches the server.
        await self.play(self.prompt("pin_failed"))
        self.outcome = "pin_failed"
        return None

    async def _read_pin(self, prompt: Prompt) -> str:
        """Plays `prompt` and collects digits until `#` or `pin_length` digits.

        The first digit cuts the prompt short; `*` starts the entry over; a `#` before
        any digit is ignored.
        """
        while not self._digits.empty():
            self._digits.get_nowait()
        await self.play(prompt, wait=False)
        digits = ""
        timeout = prompt.seconds + self.settings.first_digit_timeout
        while len(digits) < self.settings.pin_length:
            try:
                digit = await asyncio.wait_for(self._digits.get(), timeout)
            except TimeoutError:
                break
            self.audio.stop_prompts()
            timeout = self.settings.digit_timeout
            if digit == "#":
                if not digits:
                    continue  # a stray `#` (e.g. after a PIN that was already complete)
                break
            if digit == "*":
                digits = ""
            elif digit.isdigit():
                digits += digit
        self.audio.stop_prompts()
        return digits

    async def _pump_events(self) -> None:
        try:
            while True:
                event = await self.link.next_event()
                self._events.put_nowait(event)
                if event in (LinkEvent.LOST, LinkEvent.ENDED, LinkEvent.REMOVED):
                    return
        except LinkError:
            self._events.put_nowait(LinkEvent.LOST)

    async def _goodbye(self, event: LinkEvent) -> str:
        name = {
            LinkEvent.DENIED: "denied",
            LinkEvent.TIMEOUT: "timeout",
            LinkEvent.ENDED: "ended",
            LinkEvent.REMOVED: "removed",
        }.get(event, "unavailable")
        await self.play(self.prompt(name))
        return event.value

    async def _meeting(self) -> str:
        room = RoomMix()
        sink = await self.link.start_media(room)
        self.audio.set_sink(sink)
        self.audio.set_background(room)
        await self.play(self.prompt("admitted"), wait=False)
        star = False
        digit_task: asyncio.Task[str] = asyncio.create_task(self._digits.get())
        event_task: asyncio.Task[LinkEvent] = asyncio.create_task(self._events.get())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {digit_task, event_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if digit_task in done:
                    digit = digit_task.result()
                    digit_task = asyncio.create_task(self._digits.get())
                    if star and digit == "6":
                        await self._toggle_mute()
                    elif star and digit == "9":
                        await self._toggle_hand()
                    star = digit == "*"
                if event_task in done:
                    event = event_task.result()
                    event_task = asyncio.create_task(self._events.get())
                    if event is LinkEvent.MUTE_REQUEST:
                        if not self.muted:
                            await self.play(self.prompt("mute_request"), wait=False)
                    elif event is not LinkEvent.ADMITTED:
                        self.audio.set_sink(None)
                        self.audio.set_background(None)
                        return await self._goodbye(event)
        finally:
            digit_task.cancel()
            event_task.cancel()

    async def _toggle_mute(self) -> None:
        self.muted = not self.muted
        self.audio.muted = self.muted
        self.audio.stop_prompts()
        await self.play(self.prompt("muted" if self.muted else "unmuted"), wait=False)
        await self.link.set_mic(not self.muted)

    async def _toggle_hand(self) -> None:
        self.hand = not self.hand
        self.audio.stop_prompts()
        await self.play(self.prompt("hand_up" if self.hand else "hand_down"), wait=False)
        await self.link.set_hand(self.hand)
