"""Browser-like guests with a camera (test pattern) and a microphone (tone), in a
process of their own so that their encoders do not count in the memory of the
process under test.

    PYTHONPATH=. python tests/tui/cameras.py URL SLUG COUNT SECONDS

Each guest joins as "Kamera N" (a leader admits it), publishes, and the process
prints "published N" once all are sending; it leaves after SECONDS.
"""

from __future__ import annotations

import asyncio
import sys

import aioice.ice

from app.client import KreisClient
from app.participant import PatternTrack, RoomParticipant, tone_track


async def camera(url: str, slug: str, n: int) -> tuple[KreisClient, RoomParticipant]:
    client = KreisClient(url, kind="browser")
    await client.connect()
    media = RoomParticipant(client, audio_only=True)
    await media.start()
    await client.send({"type": "join", "room": slug, "name": f"Kamera {n}"})
    await client.expect("joined", timeout=30)
    await media.publish([(tone_track(300.0 + 100 * n), "mic"), (PatternTrack(fps=10), "camera")])
    await client.send({"type": "media_state", "mic": True, "camera": True, "screen": False})
    return client, media


async def main(url: str, slug: str, count: int, seconds: float) -> None:
    # Loopback only (aioice leaves loopback out by default).
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    guests = await asyncio.gather(*(camera(url, slug, n) for n in range(1, count + 1)))
    print(f"published {count}", flush=True)
    await asyncio.sleep(seconds)
    for client, media in guests:
        await media.close()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
