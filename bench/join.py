"""Join-time benchmark: Chromium opens a room URL where someone is already publishing,
and the clock runs until the first remote video frame is decoded.

    python -m bench.join [--joins 12]

In a loopback-only namespace:

    unshare -n bash -c 'ip link set lo up; ip route add default dev lo; \
        .venv/bin/python -m bench.join'

The real server runs as a subprocess; a protocol leader starts the room with the
lobby off (the lobby's wait is a person's decision, not the server's speed). A host
page joins and publishes its fake camera; then each join is a fresh browser context
(no cache, no cookies) that opens /<slug>, fills the pre-join form and presses Join.
Measured from navigation start to `framesDecoded > 0` on an inbound video stream, read
from the client's read-only window.kreis hook. Prints p50 and p95 and a RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from playwright.async_api import Browser, Page, async_playwright

from bench import server as bench_server
from bench.measure import quantile
from tests.chromium_flags import CHROMIUM, CHROMIUM_ARGS

POLL = 0.02
SLUG = "wie-schnell"


async def _page(browser: Browser, url: str) -> Page:
    context = await browser.new_context(
        locale="en-US", viewport={"width": 1000, "height": 700}, base_url=url
    )
    await context.grant_permissions(["camera", "microphone"])
    return await context.new_page()


async def _enter(page: Page, name: str) -> float:
    """Opens the room page and joins; returns when the page had loaded (monotonic)."""
    await page.goto(f"/{SLUG}")
    loaded = time.monotonic()
    await page.fill("#name", name)
    await page.check("#rules")
    await page.click("#join")
    return loaded


async def _until(page: Page, script: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await page.evaluate(script):
            return
        await asyncio.sleep(POLL)
    raise TimeoutError(f"timed out waiting for {what}")


IN_ROOM = "window.kreis !== undefined && window.kreis.state === 'room'"
FIRST_FRAME = (
    "window.kreis !== undefined && window.kreis.state === 'room' && window.kreis.stats()"
    ".then(s => s.inbound.some(i => i.kind === 'video' && i.framesDecoded > 0))"
)
PUBLISHING = "window.kreis.stats().then(s => s.outbound.some(o => o.packetsSent > 20))"


async def run(joins: int) -> tuple[list[float], list[float]]:
    srv = bench_server.start()
    try:
        leader = await bench_server.leader(srv.url, [SLUG])
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                host = await _page(browser, srv.url)
                await _enter(host, "Gastgeberin")
                await _until(host, IN_ROOM, 20, "host in the room")
                await _until(host, PUBLISHING, 20, "host publishing")
                firsts: list[float] = []
                rooms: list[float] = []
                for i in range(joins):
                    page = await _page(browser, srv.url)
                    started = time.monotonic()
                    loaded = await _enter(page, f"Gast {i}") - started
                    await _until(page, IN_ROOM, 20, "guest in the room")
                    rooms.append(time.monotonic() - started)
                    await _until(page, FIRST_FRAME, 30, "first remote frame")
                    firsts.append(time.monotonic() - started)
                    print(
                        f"join {i + 1}: page loaded {loaded * 1000:.0f} ms, "
                        f"in room {rooms[-1] * 1000:.0f} ms, "
                        f"first frame {firsts[-1] * 1000:.0f} ms",
                        flush=True,
                    )
                    await page.context.close()
                    await asyncio.sleep(0.3)
            finally:
                await browser.close()
        await leader.close()
        return firsts, rooms
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--joins", type=int, default=12)
    args = ap.parse_args()
    firsts, rooms = asyncio.run(run(max(10, args.joins)))
    f, r = sorted(firsts), sorted(rooms)
    print(
        f"in room: p50={quantile(r, 0.5) * 1000:.0f} ms; first frame: "
        f"mean={statistics.mean(f) * 1000:.0f} ms min={f[0] * 1000:.0f} ms "
        f"max={f[-1] * 1000:.0f} ms",
        flush=True,
    )
    print(
        f"RESULT join_p50_ms={quantile(f, 0.5) * 1000:.0f} "
        f"join_p95_ms={quantile(f, 0.95) * 1000:.0f} joins={len(f)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
