"""The console's audio in a room full of cameras: it asks for audio only, so the
server offers it no video at all, and its memory stays flat.

Three browser-like guests (tests/tui/cameras.py, in a process of their own) publish a
test-pattern camera and a tone. The console's audio (`kreis console --audio`, here
`tui.audio.ConsoleAudio` with the file backend, which is what the option runs) stays
in the room for 60 s. Its down connection must carry the three microphones and no
video m-line, and its resident memory must stay within 10 MB of where it was once
the media flowed. Before audio-only subscriptions, one 640×480 camera grew it by
about 94 MB in 8 s.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
import pytest

from tests.sipgw.participant import leader_session, wait_entrants
from tui.audio import ConsoleAudio, FileBackend

pytestmark = [pytest.mark.tui, pytest.mark.timeout(150)]

CAMERAS = 3
SECONDS = 60.0
SLUG = "drei-kameras-und-ein-ohr"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def write_tone(path: Path, hz: float = 440.0, seconds: float = 2.0) -> None:
    t = np.arange(int(48000 * seconds)) / 48000
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.sin(2 * math.pi * hz * t) * 9000).astype(np.int16).tobytes())


async def test_console_audio_gets_no_video_and_keeps_its_memory(
    kreis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    leader, _pin = await leader_session(
        kreis_server.url, kreis_server.group, kreis_server.password, SLUG
    )
    mic = tmp_path / "mic.wav"
    write_tone(mic)
    audio = ConsoleAudio(
        kreis_server.url,
        kreis_server.group,
        kreis_server.password,
        FileBackend(mic, tmp_path / "speaker.wav"),
    )
    root = Path(__file__).resolve().parents[2]
    cameras = subprocess.Popen(
        [sys.executable, str(root / "tests/tui/cameras.py"), kreis_server.url, SLUG,
         str(CAMERAS), str(SECONDS + 30)],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    try:
        await audio.start(SLUG)
        for entrant in await wait_entrants(leader, SLUG, "Kamera", CAMERAS, timeout=30):
            await leader.send({"type": "admit", "room": SLUG, "id": entrant["id"]})
        assert cameras.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(cameras.stdout.readline), 40)
        assert line.strip() == f"published {CAMERAS}".encode(), line
        media = audio.media
        assert media is not None

        def microphones() -> int:
            down = media.down
            if down is None or down.remoteDescription is None:
                return 0
            return down.remoteDescription.sdp.count("m=audio")

        deadline = time.monotonic() + 30
        while microphones() < CAMERAS and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert microphones() == CAMERAS, "the console never got the guests' microphones"
        await asyncio.sleep(5)  # buffers, jitter buffers and decoders settle
        start = rss_mb()
        peak = start
        t_end = time.monotonic() + SECONDS
        while time.monotonic() < t_end:
            await asyncio.sleep(2)
            peak = max(peak, rss_mb())
        assert media.down is not None
        sdp = media.down.remoteDescription.sdp
        local = media.down.localDescription.sdp
        print(f"console audio RSS: {start:.1f} MB at start, peak {peak:.1f} MB in {SECONDS:.0f} s")
        assert "m=video" not in sdp and "m=video" not in local, "video was negotiated"
        assert all(t.kind == "audio" for t in media.down.getTransceivers())
        assert audio.backend.frames_played > SECONDS * 40, "the console heard nothing"  # type: ignore[attr-defined]
        assert peak - start < 10, f"RSS grew from {start:.1f} to {peak:.1f} MB"
    finally:
        cameras.kill()
        cameras.wait(10)
        await audio.stop()
        await leader.close()
