"""What the server actually forwards with E2EE on, seen from inside the real server.

The server runs with the test harness's hooks (tests/serve_with_hooks.py), which install
a payload tap in the SFU (`Router.payload_tap`, tests/server_hooks.py): once armed
through `POST /_test/tap` it keeps the first forwarded video RTP payloads of every
publisher. The tests check that

- with E2EE on, every VP8 frame the SFU forwards carries the engine's trailer
  (`… | key id | counter | "KRE\\x01"`) and a VP8 decoder gets no picture out of it,
  while with E2EE off the same sender's frames decode with the same decoder;
- a participant that claims E2EE but publishes plain VP8 (an aiortc client speaking the
  protocol) is forwarded by the SFU but never decoded by the browsers: their engine
  drops its frames, and the browsers keep decoding each other.
"""

from __future__ import annotations

import asyncio
import base64
import fractions
import functools
import time
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from chromium_flags import CHROMIUM, CHROMIUM_ARGS
from page_checks import keeps_flowing, media, start_room, wait_for
from playwright.async_api import Browser, Page, async_playwright
from test_e2ee_meeting import confirm_clear, e2ee, open_room, same_sas, until
from vp8_tap import HOOKS, MAGIC, arm_tap, decode, frames_of, is_keyframe, tapped

from app.client import KreisClient
from sfu import aiortc_private as private

pytestmark = [pytest.mark.e2ee, pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

CLIENT_PORTS = (44600, 44699)
"""UDP ports of the aiortc intruder (the server's range is picked elsewhere, free)."""
# A valid uncompressed P-256 point (the curve's generator): looks like any public key.
P256_G = bytes.fromhex(
    "04"
    "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
)


# --- room setup ------------------------------------------------------------------------


async def browsers(
    chromium: Browser, server: Any, slug: str, names: list[str], errors: list[str]
) -> tuple[list[Page], list[str]]:
    pages: list[Page] = []
    for name in names:
        context = await chromium.new_context(base_url=server.url, locale="en-US")
        await context.grant_permissions(["camera", "microphone"])
        page = await context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        await open_room(page, slug, name)
        pages.append(page)
    for page in pages:
        await until(page, "window.kreis && window.kreis.state === 'room'", 20, "joined")
    ids = [(await p.evaluate("window.kreis.me"))["id"] for p in pages]
    return pages, ids


async def decoding(page: Page, others: set[str], state: str) -> bool:
    m = await media(page)
    s = await e2ee(page)
    return s["state"] == state and all(m.get(o, {}).get("frames", 0) > 0 for o in others)


async def rising(page: Page, others: set[str], seconds: float = 2.0) -> None:
    await keeps_flowing(page, others, seconds, energy=False)


# --- 1: the SFU forwards ciphertext ------------------------------------------------------


async def test_forwarded_payloads_are_ciphertext(server_factory: Any) -> None:
    server = server_factory("tap", **HOOKS)
    slug = "nur-chiffretext"
    leader = await start_room(server, slug)
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    errors: list[str] = []
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages, ids = await browsers(chromium, server, slug, ["Ahorn", "Birke", "Ceder"], errors)
            others = [set(ids) - {pid} for pid in ids]
            for page, o in zip(pages, others, strict=True):
                await wait_for(functools.partial(decoding, page, o, "on"), 40, "e2ee media")

            # E2EE on: what leaves the SFU is the engine's frame format, not VP8.
            await arm_tap(server)
            encrypted = {pid: await tapped(server, pid) for pid in ids}
            for pid, payloads in encrypted.items():
                frames = frames_of(payloads)
                assert len(frames) >= 2, (pid, len(payloads))
                for frame, last_packet in frames:
                    assert last_packet.endswith(MAGIC), (pid, last_packet[-16:].hex())
                    assert frame.endswith(MAGIC)
                # a keyframe among them (arm_tap asked for one), or the check proves little
                assert any(is_keyframe(f) for f, _ in frames), pid
                pictures, errs = decode([f for f, _ in frames])
                assert pictures == 0, (pid, pictures, errs, len(frames))

            # The safety words: the same on every browser, and new when someone joins.
            sas = await same_sas(pages)
            fourth, _ = await browsers(chromium, server, slug, ["Dattel"], errors)
            everyone = [*pages, *fourth]

            async def new_sas() -> bool:
                now = [await p.evaluate("window.kreisE2ee.sas") for p in everyone]
                return now[0] is not None and now[0] != sas and all(s == now[0] for s in now)

            await wait_for(new_sas, 20, "one new SAS on all four browsers")
            await wait_for(
                functools.partial(decoding, fourth[0], set(ids), "on"), 30, "fourth decodes"
            )

            # E2EE off, same senders: the same tap and decoder see real VP8 pictures.
            await leader.send({"type": "set_e2ee", "room": slug, "on": False})
            await confirm_clear(everyone)
            for page in pages:
                await until(page, "window.kreisE2ee.state === 'off'", 10, "off")

            async def all_clear() -> bool:
                return all([(await e2ee(p))["passedClear"] > 0 for p in pages])

            await wait_for(all_clear, 10, "clear frames")
            await asyncio.sleep(1.5)  # the switch delay: the last encrypted frames are gone
            await arm_tap(server)
            clear = {pid: await tapped(server, pid) for pid in ids}
            for pid, payloads in clear.items():
                plain = [f for f, _ in frames_of(payloads)]
                assert plain and not any(f.endswith(MAGIC) for f in plain), pid
                start = next(i for i, f in enumerate(plain) if is_keyframe(f))
                pictures, errs = decode(plain[start:])
                assert pictures > 0 and errs == 0, (pid, pictures, errs, len(plain))
                assert not set(payloads) & set(encrypted[pid]), pid
            # Media keeps coming in clear. One page in three full CI runs saw every
            # stream stand still for more than 4.5 s here (issue 12, not understood):
            # it may take up to 15 s, and the page's connection state is shown if not.
            for page, o in zip(pages, others, strict=True):
                try:
                    await keeps_flowing(page, o, 1.5, energy=False, windows=10)
                except AssertionError as stood_still:
                    state = await page.evaluate("window.kreis.stats()")
                    raise AssertionError(f"{stood_still}; {state}") from None
            assert not errors, errors
        finally:
            await chromium.close()
            await leader.close()


# --- 2: plain media from a participant who claims E2EE is dropped -------------------------


class MovingTrack(VideoStreamTrack):
    """A plain video: moving bars, 320x240, paced by aiortc's VideoStreamTrack clock."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        shift = int(pts * time_base * 60) % 320
        img = np.zeros((240, 320, 3), np.uint8)
        img[:, :, 1] = ((np.arange(320) + shift) % 64 * 4).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base or fractions.Fraction(1, 90000)
        return frame


async def intruder_joins(server: Any, leader: KreisClient, slug: str) -> tuple[KreisClient, str]:
    """A protocol client knocks, the leader admits it, it announces E2EE "on"."""
    await leader.send({"type": "set_lobby", "room": slug, "on": True})
    client = KreisClient(server.url, kind="browser")
    await client.connect()
    await client.send(
        {"type": "join", "room": slug, "name": "Eindringling", "password": None, "resume": None}
    )
    deadline = time.monotonic() + 10
    entrant: str | None = None
    while entrant is None and time.monotonic() < deadline:
        queue = await leader.expect("lobby_queue", timeout=10)
        entrant = next((e["id"] for e in queue["entrants"]), None)
    assert entrant is not None, "the intruder never reached the lobby"
    await leader.send({"type": "admit", "room": slug, "id": entrant})
    joined = await client.expect("joined", timeout=10)
    key = base64.b64encode(P256_G).decode("ascii")
    await client.send({"type": "e2ee_state", "state": "on", "public_key": key})
    return client, str(joined["id"])


async def publish_plain_vp8(client: KreisClient) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(MovingTrack(), direction="sendonly")
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
    transceiver.setCodecPreferences(vp8)
    private.configure_ice(pc, "127.0.0.1", "127.0.0.1", *CLIENT_PORTS)
    await pc.setLocalDescription(await pc.createOffer())
    mid = transceiver.mid or "0"
    answer = await client.request(
        {
            "type": "up_offer",
            "sdp": pc.localDescription.sdp,
            "tracks": [{"mid": mid, "kind": "video", "source": "camera"}],
        },
        "up_answer",
        timeout=15,
    )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    return pc


async def inbound_video(page: Page, participant: str) -> dict[str, Any] | None:
    snap = await page.evaluate("window.kreis.stats()")
    for s in snap["inbound"]:
        if s["participant"] == participant and s["kind"] == "video":
            found: dict[str, Any] = s
            return found
    return None


async def test_unencrypted_injection_is_dropped(server_factory: Any) -> None:
    server = server_factory("inject", **HOOKS)
    slug = "kein-klartext"
    leader = await start_room(server, slug)
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    errors: list[str] = []
    pc: RTCPeerConnection | None = None
    intruder: KreisClient | None = None
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages, ids = await browsers(chromium, server, slug, ["Ahorn", "Birke"], errors)
            for page, other in zip(pages, reversed(ids), strict=True):
                await wait_for(functools.partial(decoding, page, {other}, "on"), 40, "e2ee media")

            intruder, evil = await intruder_joins(server, leader, slug)
            await arm_tap(server)
            pc = await publish_plain_vp8(intruder)

            async def receiving(page: Page) -> bool:
                s = await inbound_video(page, evil)
                return s is not None and s["packetsReceived"] > 100

            for page in pages:
                await wait_for(functools.partial(receiving, page), 30, "intruder packets")

            # The SFU forwarded plain VP8: no trailer, and it decodes.
            frames = [f for f, _ in frames_of(await tapped(server, evil))]
            assert frames and not any(f.endswith(MAGIC) for f in frames)
            start = next(i for i, f in enumerate(frames) if is_keyframe(f))
            pictures, errs = decode(frames[start:])
            assert pictures > 0 and errs == 0, (pictures, errs)

            drops_before = [(await e2ee(p))["droppedBy"].get("clear", 0) for p in pages]
            await asyncio.sleep(2.0)
            for page, other, before in zip(pages, reversed(ids), drops_before, strict=True):
                s = await inbound_video(page, evil)
                assert s is not None and s["framesDecoded"] == 0, s
                stats = await e2ee(page)
                assert stats["state"] == "on", stats
                assert stats["droppedBy"].get("clear", 0) > before, stats
                assert stats["perParticipant"].get(evil, {}).get("decrypted", 0) == 0, stats
                await rising(page, {other}, 1.5)
                assert (await e2ee(page))["passedClear"] == 0
            assert not errors, errors
        finally:
            if pc is not None:
                await pc.close()
            if intruder is not None:
                await intruder.close()
            await chromium.close()
            await leader.close()
