"""Protocol clients for the gateway's end-to-end tests: a leader and an aiortc participant.

`RoomParticipant` joins a room like a browser would, with the shared
`app.participant.RoomParticipant` for its media: it publishes a steady sine tone as its
microphone and records everything the SFU sends it, resampled to 16 kHz mono, for FFT
checks.
"""

from __future__ import annotations

import time
from typing import Any

import av
import numpy as np

from app import participant as shared
from app.client import KreisClient


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
    """A browser-like participant: publishes a tone, records the room at 16 kHz."""

    def __init__(self, url: str, slug: str, name: str, tone_hz: float) -> None:
        self.client = KreisClient(url, kind="browser")
        self.slug = slug
        self.name = name
        self.media = shared.RoomParticipant(self.client, audio_only=True, on_audio=self._heard)
        self.tone_hz = tone_hz
        self.received: list[tuple[float, np.ndarray]] = []
        self._resample = shared.MonoResampler(16000)
        self.id = ""

    async def join(self, leader: KreisClient | None = None) -> None:
        await self.client.connect()
        await self.media.start()
        await self.client.send({"type": "join", "room": self.slug, "name": self.name})
        first = await self.client.expect("joined", "lobby_status", timeout=10)
        if first["type"] == "lobby_status":
            assert leader is not None, "the participant waits in the lobby"
            entrant = await wait_entrant(leader, self.slug, self.name)
            await leader.send({"type": "admit", "room": self.slug, "id": entrant["id"]})
            first = await self.client.expect("joined", timeout=10)
        self.id = str(first["id"])
        await self.media.publish([(shared.tone_track(self.tone_hz), "mic")])

    def _heard(self, source: str, frame: av.AudioFrame) -> None:
        now = time.monotonic()
        self.received.extend((now, pcm) for pcm in self._resample(source, frame))

    def heard_since(self, since: float) -> np.ndarray:
        parts = [pcm for t, pcm in self.received if t >= since]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    async def close(self) -> None:
        await self.media.close()
        await self.client.close()
