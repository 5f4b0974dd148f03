"""The console's audio (`kreis console --audio`) with the console's logging, as a
process of its own: its log directory is one of those the privacy test searches.

    PYTHONPATH=. python tests/sipgw/console_audio.py URL GROUP PASSWORD SLUG MIC.wav \\
        LOG_DIR LEVEL SECONDS

Logging is set up by `tui.main.configure_console_logging`, as `kreis console
--log-dir LOG_DIR --log-level LEVEL` does; the audio is `tui.audio.ConsoleAudio` with
the file backend (MIC.wav as the microphone, the room into speaker.wav next to it).
Prints "console joined" once in.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aioice.ice

from tui.audio import ConsoleAudio, FileBackend
from tui.main import configure_console_logging, parse_args


async def run(url: str, group: str, password: str, slug: str, mic: str, seconds: float) -> None:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    speaker = Path(mic).with_name("speaker.wav")
    audio = ConsoleAudio(url, group, password, FileBackend(Path(mic), speaker))
    try:
        await audio.start(slug)
        print("console joined", flush=True)
        await asyncio.sleep(seconds)
    finally:
        await audio.stop()


if __name__ == "__main__":
    url, group, password, slug, mic, log_dir, level, seconds = sys.argv[1:9]
    configure_console_logging(parse_args(["--log-dir", log_dir, "--log-level", level]))
    asyncio.run(run(url, group, password, slug, mic, float(seconds)))
