"""The SFU worker processes forward media and never decode or encode it.

The other SFU tests prove this for a router inside the test process
(`tests/sfu/codec_watch.py`). Here the real `kreis serve` runs two SFU worker processes,
and `tests/sfu/codec_site/sitecustomize.py`, loaded by every process of the server,
records each aiortc decoder or encoder made. Two participants (the shared
`app.participant.RoomParticipant`, in this test process) publish a tone and a test
picture and decode each other's: the media went through the workers, measured, and the
workers' record holds no codec.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from app import participant as shared
from app.client import KreisClient

pytestmark = [pytest.mark.netns, pytest.mark.usefixtures("loopback_ice")]

SITE = Path(__file__).resolve().parent / "codec_site"
SLUG = "ohne-dekoder"
TONES = {"A": 700.0, "B": 1300.0}


class Peer:
    """A participant that publishes a tone and a camera and counts what it decodes."""

    def __init__(self, url: str, name: str) -> None:
        self.client = KreisClient(url, kind="browser")
        self.name = name
        self.frames = 0
        self.audio: list[np.ndarray] = []
        self._mono = shared.MonoResampler(16000)
        self.media = shared.RoomParticipant(
            self.client, audio_only=False, on_audio=self._heard, on_video=self._seen
        )

    def _heard(self, source: str, frame: av.AudioFrame) -> None:
        self.audio.extend(self._mono(source, frame))

    def _seen(self, source: str, frame: av.VideoFrame) -> None:
        self.frames += 1

    async def join(self) -> None:
        await self.client.connect()
        await self.media.start()
        await self.client.request({"type": "join", "room": SLUG, "name": self.name}, "joined")
        tracks = [(shared.tone_track(TONES[self.name]), "mic"), (shared.PatternTrack(), "camera")]
        await self.media.publish(tracks)

    def peak_hz(self) -> float:
        pcm = np.concatenate(self.audio[-100:]).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
        return float(np.fft.rfftfreq(len(pcm), 1 / 16000)[int(np.argmax(spectrum))])

    async def close(self) -> None:
        await self.media.close()
        await self.client.close()


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.1)


async def test_sfu_worker_processes_make_no_codec(
    server_factory: Callable[..., Any], tmp_path: Path
) -> None:
    record = tmp_path / "codecs.log"
    server = server_factory(
        "workers",
        env={"PYTHONPATH": str(SITE), "KREIS_CODEC_LOG": str(record)},
        media={"workers": 2},
    )
    leader = KreisClient(server.url, kind="console")
    peers = [Peer(server.url, "A"), Peer(server.url, "B")]
    try:
        await leader.connect()
        login = {"type": "login", "group": server.group, "password": server.password}
        await leader.request(login, "login_ok")
        create = {"type": "create_room", "slug": SLUG, "lobby": False, "dial_in": False}
        await leader.request(create, "room_created")
        for peer in peers:
            await peer.join()
        for peer in peers:
            await _until(lambda p=peer: p.frames >= 30 and len(p.audio) >= 100, 30, "media")
        assert abs(peers[0].peak_hz() - TONES["B"]) < 50, peers[0].peak_hz()
        assert abs(peers[1].peak_hz() - TONES["A"]) < 50, peers[1].peak_hz()
    finally:
        for peer in peers:
            await peer.close()
        await leader.close()
    lines = record.read_text(encoding="utf-8").splitlines()
    installed = {line.split()[0] for line in lines if line.split()[1] == "installed"}
    # the server and its two SFU workers, at least
    assert len(installed) >= 3, lines
    assert [line for line in lines if line.split()[1] != "installed"] == []
