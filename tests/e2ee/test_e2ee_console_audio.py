"""`kreis console --audio` in an end-to-end encrypted room: refused, like dial-in.

The console's audio is an aiortc client that sends clear Opus; browsers cannot tell it
from an encrypted participant's silence. So the server refuses the console's audio join
while E2EE is on (`e2ee_console_audio`), removes console audio from the room's media when
E2EE goes on, and the console explains why in German and English.
"""

from __future__ import annotations

import asyncio
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from page_checks import start_room

from app.client import ServerError
from tui.audio import ConsoleAudio, FileBackend
from tui.errors import explain
from tui.i18n import set_lang

pytestmark = [pytest.mark.e2ee, pytest.mark.asyncio(loop_scope="module")]


def tone(path: Path) -> Path:
    t = np.arange(48000) / 48000
    pcm = (np.sin(2 * math.pi * 440 * t) * 9000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(pcm.tobytes())
    return path


def console_audio(server: Any, tmp_path: Path) -> ConsoleAudio:
    backend = FileBackend(tone(tmp_path / "mic.wav"), tmp_path / "speaker.wav")
    return ConsoleAudio(server.url, server.group, server.password, backend)


async def consoles_in(leader: Any, slug: str) -> list[dict[str, Any]]:
    await asyncio.sleep(0.5)
    latest = leader.latest("participants") or {"participants": []}
    return [p for p in latest["participants"] if p["kind"] == "console"]


async def test_console_audio_is_refused_while_e2ee_is_on(kreis_server: Any, tmp_path: Path) -> None:
    slug = "konsole-verschluesselt"
    leader = await start_room(kreis_server, slug)
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    await leader.expect("room_state")
    audio = console_audio(kreis_server, tmp_path)
    try:
        with pytest.raises(ServerError) as refused:
            await audio.start(slug)
        assert refused.value.code == "e2ee_console_audio"
        assert await consoles_in(leader, slug) == []
    finally:
        await audio.stop()
        await leader.close()


async def test_console_audio_leaves_when_e2ee_goes_on(kreis_server: Any, tmp_path: Path) -> None:
    slug = "konsole-dann-verschluesselt"
    leader = await start_room(kreis_server, slug)
    audio = console_audio(kreis_server, tmp_path)
    try:
        await audio.start(slug)
        assert len(await consoles_in(leader, slug)) == 1
        await leader.send({"type": "set_e2ee", "room": slug, "on": True})
        assert audio.client is not None
        deadline = asyncio.get_running_loop().time() + 10
        while await consoles_in(leader, slug):
            assert asyncio.get_running_loop().time() < deadline, "console audio stayed"
        # The console's audio client heard why, then was removed from the room's media.
        error = audio.client.latest("error")
        assert error is not None and error["code"] == "e2ee_console_audio", error
        assert audio.client.latest("removed") is not None
    finally:
        await audio.stop()
        await leader.close()


async def test_the_console_explains_the_refusal_in_both_languages() -> None:
    try:
        set_lang("en")
        assert "not end-to-end encrypted" in explain("e2ee_console_audio")
        set_lang("de")
        assert "nicht Ende-zu-Ende-verschlüsselt" in explain("e2ee_console_audio")
    finally:
        set_lang("en")
