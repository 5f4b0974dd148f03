"""Protocol clients for the gateway's end-to-end tests: a leader and an aiortc participant.

`RoomParticipant` joins a room like a browser would (signalling via app/client.py,
media via aiortc): it publishes a steady sine tone as its microphone and records
everything the SFU sends it, resampled to 16 kHz mono, for FFT checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from app.client import KreisClient

NO_STUN = RTCConfiguration(iceServers=[])
"""aiortc would ask Google's STUN server by default; Kreis never uses a public one."""
RATE = 48000
FRAME = 960  # 20 ms at 48 kHz


class ToneTrack(MediaStreamTrack):  # type: ignore[misc]
    """A sine tone in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, hz: float, level: float = 0.3) -> None:
        super().__init__()
        self.hz = hz
        self.level = level
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._n / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(self._n, self._n + FRAME)) / RATE
        pcm = (np.sin(2 * np.pi * self.hz * t) * self.level * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._n
        frame.time_base = fractions.Fraction(1, RATE)
        self._n += FRAME
        return frame


async def leader_session(url: str, group: str, password: str, slug: str) -> tuple[KreisClient, str]:
    """A logged-in leader with a started room (lobby on) and dial-in on; returns the PIN."""
    leader = KreisClient(url, kind="console")
    await leader.connect()
    await leader.request({"type": "login", "group": group, "password": password}, "login_ok")
    await leader.request({"type": "create_room", "slug": slug, "lobby": True}, "room_created")
    await leader.send({"type": "set_dial_in", "room": slug, "on": True})
    while True:
        state = await leader.expect("room_state", timeout=10)
        if state.get("room") == slug and state["settings"]["dial_in"]:
            return leader, str(state["dial_in_pin"])


async def wait_entrant(
    leader: KreisClient, slug: str, prefix: str, timeout: float = 20
) -> dict[str, Any]:
    """The first lobby entrant of `slug` whose name starts with `prefix`."""
    return (await wait_entrants(leader, slug, prefix, 1, timeout))[0]


async def wait_entrants(
    leader: KreisClient, slug: str, prefix: str, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """The lobby entrants of `slug` named `prefix…`, once there are at least `count`."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"fewer than {count} lobby entrants {prefix!r}")
        queue = await leader.expect("lobby_queue", timeout=left)
        if queue.get("room") != slug:
            continue
        found = [dict(e) for e in queue["entrants"] if str(e["name"]).startswith(prefix)]
        if len(found) >= count:
            return found


class RoomParticipant:
    """A browser-like participant: publishes a tone, records the room."""

    def __init__(self, url: str, slug: str, name: str, tone_hz: float) -> None:
        self.client = KreisClient(url, kind="browser")
        self.slug = slug
        self.name = name
        self.tone = ToneTrack(tone_hz)
        self.up: RTCPeerConnection | None = None
        self.down: RTCPeerConnection | None = None
        self.received: list[tuple[float, np.ndarray]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.id = ""

    async def join(self, leader: KreisClient | None = None) -> None:
        await self.client.connect()
        self.client.on_message.append(self._got)
        await self.client.send({"type": "join", "room": self.slug, "name": self.name})
        first = await self.client.expect("joined", "lobby_status", timeout=10)
        if first["type"] == "lobby_status":
            assert leader is not None, "the participant waits in the lobby"
            entrant = await wait_entrant(leader, self.slug, self.name)
            await leader.send({"type": "admit", "room": self.slug, "id": entrant["id"]})
            first = await self.client.expect("joined", timeout=10)
        self.id = str(first["id"])
        self.up = RTCPeerConnection(NO_STUN)
        transceiver = self.up.addTransceiver(self.tone, direction="sendonly")
        await self.up.setLocalDescription(await self.up.createOffer())
        await self.client.send(
            {
                "type": "up_offer",
                "sdp": self.up.localDescription.sdp,
                "tracks": [{"mid": transceiver.mid, "kind": "audio", "source": "mic"}],
            }
        )
        answer = await self.client.expect("up_answer", timeout=15)
        await self.up.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

    async def _got(self, msg: dict[str, Any]) -> None:
        if msg.get("type") != "down_offer":
            return
        # Answered in its own task so the client's reader keeps reading meanwhile.
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)

    async def _answer(self, msg: dict[str, Any]) -> None:
        if self.down is None:
            self.down = RTCPeerConnection(NO_STUN)
            self.down.on("track", self._track)
        await self.down.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
        await self.down.setLocalDescription(await self.down.createAnswer())
        await self.client.send({"type": "down_answer", "sdp": self.down.localDescription.sdp})

    def _track(self, track: MediaStreamTrack) -> None:
        task = asyncio.create_task(self._record(track))
        self._tasks.add(task)

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind != "audio":
                    continue
                for out in resampler.resample(frame):
                    self.received.append((time.monotonic(), out.to_ndarray().reshape(-1)))

    def heard_since(self, since: float) -> np.ndarray:
        parts = [pcm for t, pcm in self.received if t >= since]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pc in (self.up, self.down):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        await self.client.close()
