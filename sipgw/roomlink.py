"""`ServerLink`: a call's `RoomLink` to a real Kreis server (WebSocket + aiortc).

One signalling connection per call, as docs/protocol.md asks: `hello` (kind gateway),
`gateway_auth`, `dial_in`, then the lobby (`lobby_status`, `joined`). The media is
`app.participant.RoomParticipant`, audio only, the same participant the console uses:
the caller's voice goes up as an Opus track, every voice of the room comes down, is
resampled to 16 kHz mono and pushed into the call's `RoomMix`, which mixes them for the
phone. The caller's own track is never mixed, even if the SFU sent it back.

Only `app/client.py`, `app/participant.py` and the documented protocol are used: no
server code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import av

from app.client import ClientError, KreisClient
from app.participant import MonoResampler, PcmTrack, RoomParticipant
from sipgw.audio import RATE, Pcm, RoomMix
from sipgw.errors import LinkError
from sipgw.link import CallerLabel, DialIn, DialInResult, LinkEvent, RoomLink
from sipgw.lockout import CallerKeys

log = logging.getLogger(__name__)


class ServerLink(RoomLink):
    """A call's connection to a Kreis server."""

    def __init__(self, server_url: str, secret: str, lang: str = "de") -> None:
        self.client = KreisClient(server_url, kind="gateway", lang=lang)
        self._secret = secret
        self._events: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self._waiting: asyncio.Future[dict[str, Any]] | None = None
        self.participant_id: str | None = None
        self.state = "new"
        """new → connected → lobby → joined → closed."""
        self.media = RoomParticipant(self.client, audio_only=True, on_audio=self._heard)
        self.caller_track: PcmTrack | None = None
        self.mix: RoomMix | None = None
        self._resample = MonoResampler(RATE)
        self._watch: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- signalling

    async def connect(self) -> None:
        try:
            await self.client.connect(timeout=10)
            await self.client.request(
                {"type": "gateway_auth", "secret": self._secret}, "gateway_ok", timeout=10
            )
        except (ClientError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            await self.client.close()
            raise LinkError(f"cannot reach the server: {type(exc).__name__}") from None
        self.client.on_message.append(self._got_message)
        await self.media.start()
        self._watch = asyncio.create_task(self._watch_close())
        self.state = "connected"

    async def _watch_close(self) -> None:
        await self.client.closed.wait()
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(LinkError("connection closed"))
        if self.state not in ("closed",):
            self._events.put_nowait(LinkEvent.LOST)

    def _got_message(self, msg: dict[str, Any]) -> None:
        # This link consumes every message here; the client's own queue and history are
        # bounded (app.client.KEPT), so nothing needs clearing.
        kind = msg.get("type")
        if self._waiting is not None and not self._waiting.done():
            if kind in ("error", "dial_in_open") or (
                kind == "lobby_status" and msg.get("state") == "waiting"
            ):
                self._waiting.set_result(msg)
                return
            if kind == "joined":
                self.participant_id = str(msg.get("id"))
                self._waiting.set_result(msg)
                return
        if kind == "joined":
            self.participant_id = str(msg.get("id"))
            self.state = "joined"
            self._events.put_nowait(LinkEvent.ADMITTED)
        elif kind == "lobby_status":
            state = msg.get("state")
            event = {
                "denied": LinkEvent.DENIED,
                "timeout": LinkEvent.TIMEOUT,
                "ended": LinkEvent.ENDED,
            }.get(str(state))
            if event is not None:
                self._events.put_nowait(event)
        elif kind == "mute_request":
            self._events.put_nowait(LinkEvent.MUTE_REQUEST)
        elif kind == "removed":
            self._events.put_nowait(LinkEvent.REMOVED)
        elif kind == "room_ended":
            self._events.put_nowait(LinkEvent.ENDED)
        elif kind == "error":
            log.warning("server error during a call: %s", msg.get("code"))

    async def check(self, keys: CallerKeys) -> float:
        self._waiting = asyncio.get_running_loop().create_future()
        await self._send({"type": "dial_in_check", **keys.message_fields()})
        try:
            answer = await asyncio.wait_for(self._waiting, 15)
        except TimeoutError:
            raise LinkError("no answer to dial_in_check") from None
        finally:
            self._waiting = None
        if answer.get("type") == "dial_in_open":
            return 0.0
        if answer.get("code") == "rate_limited":
            return float(answer.get("retry_after") or 60)
        raise LinkError(f"dial_in_check refused: {answer.get('code')}")

    async def dial_in(self, pin: str, caller: CallerLabel, keys: CallerKeys) -> DialInResult:
        self._waiting = asyncio.get_running_loop().create_future()
        await self._send(
            {
                "type": "dial_in",
                "pin": pin,
                "caller": caller.text or "",
                "withheld": caller.withheld,
                **keys.message_fields(),
            }
        )
        try:
            answer = await asyncio.wait_for(self._waiting, 15)
        except TimeoutError:
            raise LinkError("no answer to dial_in") from None
        finally:
            self._waiting = None
        kind = answer.get("type")
        if kind == "joined":
            self.state = "joined"
            return DialInResult(DialIn.ADMITTED)
        if kind == "lobby_status":
            self.state = "lobby"
            return DialInResult(DialIn.LOBBY)
        code = answer.get("code")
        if code == "bad_pin":
            return DialInResult(DialIn.BAD_PIN)
        if code == "rate_limited":
            return DialInResult(DialIn.RATE_LIMITED, float(answer.get("retry_after") or 60))
        raise LinkError(f"dial_in refused: {code}")

    async def next_event(self) -> LinkEvent:
        return await self._events.get()

    async def _send(self, msg: dict[str, Any]) -> None:
        try:
            await self.client.send(msg)
        except (ClientError, ConnectionError, aiohttp.ClientError) as exc:
            raise LinkError(f"sending failed: {type(exc).__name__}") from None

    async def set_mic(self, on: bool) -> None:
        await self._send({"type": "media_state", "mic": on, "camera": False, "screen": False})

    async def set_hand(self, raised: bool) -> None:
        await self._send({"type": "hand", "raised": raised})

    # ------------------------------------------------------------- media

    async def start_media(self, room: RoomMix) -> Callable[[Pcm], None]:
        if self.participant_id:
            room.excluded.add(self.participant_id)
        self.mix = room
        track = self.caller_track = PcmTrack(RATE)
        try:
            await self.media.publish([(track, "mic")])
        except (TimeoutError, ClientError, ConnectionError, aiohttp.ClientError) as exc:
            raise LinkError(f"publishing failed: {type(exc).__name__}") from None
        await self.set_mic(True)
        loop = asyncio.get_running_loop()

        def sink(pcm: Pcm) -> None:  # on pjmedia's clock thread
            # The loop may close between any check and the call: ask, and take "closed"
            # (RuntimeError) as the answer, instead of checking first.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(track.put, pcm)

        return sink

    def _heard(self, source: str, frame: av.AudioFrame) -> None:
        """One frame of the room: resampled per source and mixed, never our own voice."""
        if self.mix is None or source.split("#", 1)[0] == self.participant_id:
            return
        for pcm in self._resample(source, frame):
            self.mix.push(source, pcm)

    # ------------------------------------------------------------- end

    async def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self.caller_track is not None:
            self.caller_track.stop()
        await self.media.close()
        if self.mix is not None:
            for source in self._resample.sources:
                self.mix.remove(source)
        with contextlib.suppress(Exception):
            await self.client.send({"type": "leave"})  # hung up: gone, not dropped
            await self.client.close()
        if self._watch is not None:
            self._watch.cancel()
