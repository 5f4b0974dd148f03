"""`ServerLink`: a call's `RoomLink` to a real Kreis server (WebSocket + aiortc).

One signalling connection per call, as docs/protocol.md asks: `hello` (kind gateway),
`gateway_auth`, `dial_in`, then the lobby (`lobby_status`, `joined`). After admission
the caller gets two peer connections with the SFU, Galène style: *up* carries the
caller's voice as an Opus track (`up_offer` → `up_answer`), *down* brings the room
(the server's `down_offer` → our `down_answer`). aiortc decodes the room's Opus; every
remote track is resampled to 16 kHz mono and pushed into the call's `RoomMix`, which
mixes them for the phone. The caller's own track is never mixed, even if the SFU sent
it back.

Only `app/client.py` and the documented protocol are used: no server code.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from app.client import ClientError, KreisClient
from sipgw.audio import RATE, Pcm, RoomMix
from sipgw.errors import LinkError
from sipgw.link import CallerLabel, DialIn, DialInResult, LinkEvent, RoomLink

log = logging.getLogger(__name__)

UPLINK_QUEUE_FRAMES = 10
"""At most 200 ms of the caller's voice wait for the encoder; older frames are dropped."""


class CallerTrack(MediaStreamTrack):
    """The phone caller's voice as an aiortc audio track (16 kHz frames; aiortc's Opus
    encoder resamples to 48 kHz)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[Pcm] = asyncio.Queue()
        self._pts = 0

    def put(self, pcm: Pcm) -> None:
        """Called on the event loop with one 20 ms frame."""
        if self.queue.qsize() >= UPLINK_QUEUE_FRAMES:
            self.queue.get_nowait()
        self.queue.put_nowait(pcm)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = await self.queue.get()
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += len(pcm)
        return frame


def rtc_configuration(hello: dict[str, Any]) -> RTCConfiguration:
    """ICE servers from the server's `hello` only (a TURN server or nothing).

    aiortc would otherwise ask a public STUN server (Google's) by default, which the
    privacy rules forbid: the gateway talks to nobody but the Kreis server.
    """
    servers: list[RTCIceServer] = []
    for entry in hello.get("ice_servers") or []:
        if not isinstance(entry, dict):
            continue
        urls = entry.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list):
            continue
        turn = [u for u in urls if isinstance(u, str) and u.startswith(("turn:", "turns:"))]
        if turn:
            servers.append(
                RTCIceServer(
                    urls=turn,
                    username=entry.get("username"),
                    credential=entry.get("credential"),
                )
            )
    return RTCConfiguration(iceServers=servers)


class ServerLink(RoomLink):
    """A call's connection to a Kreis server."""

    def __init__(self, server_url: str, secret: str, lang: str = "de") -> None:
        self.client = KreisClient(server_url, kind="gateway", lang=lang)
        self._secret = secret
        self._events: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self._waiting: asyncio.Future[dict[str, Any]] | None = None
        self._up_answer: asyncio.Future[dict[str, Any]] | None = None
        self.participant_id: str | None = None
        self.state = "new"
        """new → connected → lobby → joined → closed."""
        self.up: RTCPeerConnection | None = None
        self.down: RTCPeerConnection | None = None
        self.caller_track: CallerTrack | None = None
        self.mix: RoomMix | None = None
        self._mid_owner: dict[str, str] = {}
        self._readers: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._down_lock = asyncio.Lock()

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
        self._watch = asyncio.create_task(self._watch_close())
        self.state = "connected"

    async def _watch_close(self) -> None:
        await self.client.closed.wait()
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(LinkError("connection closed"))
        if self.state not in ("closed",):
            self._events.put_nowait(LinkEvent.LOST)

    async def _got_message(self, msg: dict[str, Any]) -> None:
        # This link consumes every message here; the client's own queue and history are
        # bounded (app.client.KEPT), so nothing needs clearing.
        kind = msg.get("type")
        if self._waiting is not None and not self._waiting.done():
            if kind == "error" or (kind == "lobby_status" and msg.get("state") == "waiting"):
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
        elif kind == "up_answer":
            if self._up_answer is not None and not self._up_answer.done():
                self._up_answer.set_result(msg)
        elif kind == "down_offer":
            await self._got_down_offer(msg)
        elif kind == "error":
            log.warning("server error during a call: %s", msg.get("code"))

    async def dial_in(self, pin: str, caller: CallerLabel) -> DialInResult:
        self._waiting = asyncio.get_running_loop().create_future()
        await self._send({"type": "dial_in", "pin": pin, "caller": caller.text or ""})
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
        track = CallerTrack()
        self.caller_track = track
        self.up = RTCPeerConnection(rtc_configuration(self.client.hello))
        transceiver = self.up.addTransceiver(track, direction="sendonly")
        opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == "opus"]
        if opus:
            transceiver.setCodecPreferences(opus)
        offer = await self.up.createOffer()
        await self.up.setLocalDescription(offer)
        self._up_answer = asyncio.get_running_loop().create_future()
        await self._send(
            {
                "type": "up_offer",
                "sdp": self.up.localDescription.sdp,
                "tracks": [{"mid": transceiver.mid, "kind": "audio", "source": "mic"}],
            }
        )
        try:
            answer = await asyncio.wait_for(self._up_answer, 15)
        except TimeoutError:
            raise LinkError("no up_answer") from None
        await self.up.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        up = self.up

        @up.on("connectionstatechange")
        def _state() -> None:
            log.debug("up connection %s", up.connectionState)

        await self.set_mic(True)
        loop = asyncio.get_running_loop()

        def sink(pcm: Pcm) -> None:  # on pjmedia's clock thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(track.put, pcm)

        return sink

    async def _got_down_offer(self, msg: dict[str, Any]) -> None:
        log.debug("down_offer with %d tracks", len(msg.get("tracks") or []))
        async with self._down_lock:
            for info in msg.get("tracks") or []:
                if isinstance(info, dict) and "mid" in info:
                    self._mid_owner[str(info["mid"])] = str(info.get("participant", ""))
            if self.down is None:
                self.down = RTCPeerConnection(rtc_configuration(self.client.hello))
                self.down.on("track", self._got_track)
                down = self.down

                @down.on("connectionstatechange")
                def _state() -> None:
                    log.debug("down connection %s", down.connectionState)

            await self.down.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
            answer = await self.down.createAnswer()
            await self.down.setLocalDescription(answer)
            await self._send({"type": "down_answer", "sdp": self.down.localDescription.sdp})

    def _got_track(self, track: MediaStreamTrack) -> None:
        log.debug("room track (%s)", track.kind)
        if track.kind != "audio":
            task = asyncio.create_task(self._discard(track))
        else:
            task = asyncio.create_task(self._read_room_track(track))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    def _owner(self, track: MediaStreamTrack) -> str:
        if self.down is not None:
            for transceiver in self.down.getTransceivers():
                if transceiver.receiver.track is track and transceiver.mid is not None:
                    return self._mid_owner.get(transceiver.mid, "") + "#" + transceiver.mid
        return "#" + str(id(track))

    async def _read_room_track(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        key = ""
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                if not key:
                    key = self._owner(track)
                    log.debug("first room frame (%d Hz)", frame.sample_rate)
                if self.mix is None or key.split("#", 1)[0] == self.participant_id:
                    continue  # never the caller's own voice
                for out in resampler.resample(frame):
                    self.mix.push(key, out.to_ndarray().reshape(-1).astype(np.int16))
        except MediaStreamError:
            pass
        finally:
            if self.mix is not None and key:
                self.mix.remove(key)

    async def _discard(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    # ------------------------------------------------------------- end

    async def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        if self.caller_track is not None:
            self.caller_track.stop()
        for task in list(self._readers):
            task.cancel()
        for pc in (self.up, self.down):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        with contextlib.suppress(Exception):
            await self.client.close()
        if self._watch is not None:
            self._watch.cancel()
