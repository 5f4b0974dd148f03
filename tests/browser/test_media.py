"""Media in real browsers through the real SFU: video and audio arrive and keep
arriving, muting stops the packets, a screen share reaches the others, and a lobby
entrant receives nothing at all.

Media is checked from getStats() (frames decoded, audio energy, packets), never assumed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from meeting_pages import (
    alice_and_bob,
    inbound,
    next_entrant,
    open_room,
    start_room,
    stats,
    wait_for,
    wait_publishing,
    wait_state,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


def by_sender(snapshot: dict[str, Any], kind: str, source: str) -> dict[str, dict[str, Any]]:
    return {s["participant"]: s for s in inbound(snapshot, kind, source)}


async def receiving(page: Any, videos: int, audios: int) -> dict[str, Any] | None:
    snap = await stats(page)
    video = [s for s in inbound(snap, "video", "camera") if s["framesDecoded"] > 0]
    audio = [s for s in inbound(snap, "audio", "mic") if s["totalAudioEnergy"] > 0]
    return snap if len(video) >= videos and len(audio) >= audios else None


async def test_three_participants_see_and_hear_each_other(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "drei-menschen-im-kreis"
    leaders.append(await start_room(shared_server, slug))
    pages = [await people.page() for _ in range(3)]
    for page, name in zip(pages, ["Ahorn", "Birke", "Ceder"], strict=True):
        await open_room(page, slug, name)
    for page in pages:
        await wait_state(page, "room")
    ids = [(await page.evaluate("window.kreis.me"))["id"] for page in pages]

    first = [
        await wait_for(lambda p=page: receiving(p, 2, 2), 30, "two videos and two voices")
        for page in pages
    ]
    await asyncio.sleep(2)
    for i, page in enumerate(pages):
        later = await stats(page)
        others = {pid for j, pid in enumerate(ids) if j != i}
        before_v = by_sender(first[i], "video", "camera")
        after_v = by_sender(later, "video", "camera")
        before_a = by_sender(first[i], "audio", "mic")
        after_a = by_sender(later, "audio", "mic")
        assert set(after_v) == others and set(after_a) == others, later
        for pid in others:
            assert after_v[pid]["framesDecoded"] > before_v[pid]["framesDecoded"], (pid, after_v)
            assert after_a[pid]["totalAudioEnergy"] > before_a[pid]["totalAudioEnergy"], (
                pid,
                after_a,
            )
    # the fake microphones beep: somebody is highlighted as the active speaker
    await pages[0].locator(".tile.speaking").first.wait_for(timeout=20000)
    for page in pages:
        # every tile carries the name, as text
        names = await page.locator(".tile .tile-name").all_text_contents()
        assert len(names) == 3, names


async def test_mute_and_camera_off_are_seen_and_stop_the_packets(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "stumm-und-dunkel-probe"
    alice, bob = await alice_and_bob(shared_server, people, leaders, slug)
    alice_id = (await alice.evaluate("window.kreis.me"))["id"]
    await wait_for(lambda: receiving(bob, 1, 1), 30, "Bob receives Alice")

    await alice.click("#btn-mic")
    await alice.click("#btn-camera")
    assert await alice.evaluate("window.kreis.media") == {
        "mic": False,
        "camera": False,
        "screen": False,
    }

    async def seen_muted() -> bool:
        for entry in await bob.evaluate("window.kreis.participants"):
            if entry["id"] == alice_id:
                return entry["mic"] is False and entry["camera"] is False
        return False

    await wait_for(seen_muted, 10, "Bob's list shows Alice muted")
    tile = bob.locator(f'.tile[data-participant="{alice_id}"][data-source="camera"]')
    await tile.locator(".mark.mic-off").wait_for(timeout=5000)
    await tile.locator(".mark.camera-off").wait_for(timeout=5000)
    await bob.click("#btn-people")
    row = bob.locator(f'#people li[data-participant="{alice_id}"]')
    await row.locator(".mark.mic-off").wait_for(timeout=5000)

    await asyncio.sleep(1.5)  # packets in flight drain
    before, sent_before = await stats(bob), await stats(alice)
    await asyncio.sleep(2.5)
    after, sent_after = await stats(bob), await stats(alice)
    # muting happens on the device: Alice's browser itself stops sending
    for source in ("mic", "camera"):
        b_out = [o["packetsSent"] for o in sent_before["outbound"] if o["source"] == source]
        a_out = [o["packetsSent"] for o in sent_after["outbound"] if o["source"] == source]
        assert a_out == b_out, (source, b_out, a_out)
    for kind, source in (("audio", "mic"), ("video", "camera")):
        b = by_sender(before, kind, source).get(alice_id, {"packetsReceived": 0})
        a = by_sender(after, kind, source).get(alice_id, {"packetsReceived": 0})
        assert a["packetsReceived"] == b["packetsReceived"], (kind, b, a)

    # and back on: the packets flow again
    await alice.click("#btn-mic")
    await alice.click("#btn-camera")

    async def flowing_again() -> bool:
        now = await stats(bob)
        a = by_sender(now, "audio", "mic").get(alice_id)
        v = by_sender(now, "video", "camera").get(alice_id)
        b_a = by_sender(after, "audio", "mic").get(alice_id, {"packetsReceived": 0})
        b_v = by_sender(after, "video", "camera").get(alice_id, {"framesDecoded": 0})
        return bool(
            a
            and v
            and a["packetsReceived"] > b_a["packetsReceived"] + 10
            and v["framesDecoded"] > b_v.get("framesDecoded", 0)
        )

    await wait_for(flowing_again, 15, "Alice's media again at Bob")


async def test_screen_share_reaches_the_others(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "bildschirm-zeigen-bitte"
    alice, bob = await alice_and_bob(shared_server, people, leaders, slug)
    alice_id = (await alice.evaluate("window.kreis.me"))["id"]
    await wait_for(lambda: receiving(bob, 1, 1), 30, "Bob receives Alice")

    await alice.click("#btn-screen")
    await wait_for(lambda: alice.evaluate("window.kreis.media.screen"), 10, "Alice shares")

    async def screen_frames() -> int:
        shared = by_sender(await stats(bob), "video", "screen").get(alice_id)
        return int(shared["framesDecoded"]) if shared else 0

    first = await wait_for(screen_frames, 20, "Alice's screen decoded at Bob")
    await asyncio.sleep(1.5)
    assert await screen_frames() > first
    videos = [s for s in inbound(await stats(bob), "video") if s["participant"] == alice_id]
    assert {s["source"] for s in videos} == {"camera", "screen"}
    screen_tile = bob.locator(f'.tile[data-participant="{alice_id}"][data-source="screen"]')
    await screen_tile.wait_for(timeout=5000)

    # Bob enlarges the shared screen: it fills the stage's width, the camera tiles
    # become a strip; Escape brings the grid back.
    camera_tile = bob.locator(f'.tile[data-participant="{alice_id}"][data-source="camera"]')
    button = screen_tile.locator("button.enlarge")
    small = await screen_tile.bounding_box()
    await button.click()
    assert await button.get_attribute("aria-pressed") == "true"
    assert await button.inner_text() in ("Back to all", "Zurück zu allen")
    big, strip, grid = (
        await screen_tile.bounding_box(),
        await camera_tile.bounding_box(),
        await bob.locator("#tiles").bounding_box(),
    )
    assert small and big and strip and grid
    assert big["width"] >= 0.9 * grid["width"], (big, grid)
    assert big["width"] * big["height"] > 3 * small["width"] * small["height"], (small, big)
    assert big["height"] > 2 * strip["height"], (big, strip)
    await bob.keyboard.press("Escape")
    assert await button.get_attribute("aria-pressed") == "false"
    back = await screen_tile.bounding_box()
    assert back and abs(back["width"] - small["width"]) < 2, (small, back)

    await button.click()  # enlarged while Alice stops sharing: the grid comes back
    await alice.click("#btn-screen")  # stop sharing: the tile goes away
    await screen_tile.wait_for(state="detached", timeout=10000)
    assert "has-enlarged" not in (await bob.locator("#tiles").get_attribute("class") or "")


async def test_others_video_off_for_a_weak_link_keeps_voices(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    """ "Others' video off" (More menu): the server stops offering this page any camera
    video (no frames arrive, the down connection has no camera track) while voices go
    on; switched on again, the cameras come back."""
    slug = "video-der-anderen-aus"
    alice, bob = await alice_and_bob(shared_server, people, leaders, slug)
    alice_id = (await alice.evaluate("window.kreis.me"))["id"]
    await wait_for(lambda: receiving(bob, 1, 1), 30, "Bob receives Alice")

    await bob.click("#btn-more")
    item = bob.locator("#menu-video-in")
    assert await item.inner_text() in (
        "Others' video off (for a weak connection)",
        "Video der anderen aus (bei schwacher Verbindung)",
    )
    await item.click()

    async def no_camera() -> bool:
        return alice_id not in by_sender(await stats(bob), "video", "camera")

    await wait_for(no_camera, 15, "no camera track of Alice's at Bob")
    voice = by_sender(await stats(bob), "audio", "mic")[alice_id]["totalAudioEnergy"]
    await asyncio.sleep(2.0)
    later = await stats(bob)
    assert alice_id not in by_sender(later, "video", "camera"), later
    assert by_sender(later, "audio", "mic")[alice_id]["totalAudioEnergy"] > voice
    await bob.click("#btn-more")
    assert await item.get_attribute("aria-pressed") == "true"
    await item.click()

    async def camera_back() -> bool:
        cam = by_sender(await stats(bob), "video", "camera").get(alice_id)
        return bool(cam and cam["framesDecoded"] > 0)

    await wait_for(camera_back, 20, "Alice's camera back at Bob")


async def test_lobby_entrant_receives_no_media(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "vorraum-ohne-medien"
    leader = await start_room(shared_server, slug, lobby=True)
    leaders.append(leader)
    member, waiting = await people.page(), await people.page()
    await open_room(member, slug, "Drinnen")
    entrant = await next_entrant(leader)
    await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
    await wait_state(member, "room")
    await wait_publishing(member, "member publishes")

    await open_room(waiting, slug, "Draussen")
    await wait_state(waiting, "lobby")
    await asyncio.sleep(3)
    snap = await stats(waiting)
    assert snap["inbound"] == [] and snap["hasDown"] is False and snap["hasUp"] is False, snap
    assert await waiting.evaluate("window.kreis.participants") == []
    assert await waiting.locator("#tiles .tile").count() == 0

    # admitted: now the media arrives
    entrant = await next_entrant(leader)
    assert entrant["name"] == "Draussen"
    await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
    await wait_state(waiting, "room")
    await wait_for(lambda: receiving(waiting, 1, 1), 30, "admitted entrant receives")


async def test_join_time(shared_server: Any, people: Any, leaders: list[Any]) -> None:
    """Opening the room URL with someone already there → first remote frame decoded."""
    slug = "wie-schnell-drin"
    leaders.append(await start_room(shared_server, slug))
    host, guest = await people.page(), await people.page()
    await open_room(host, slug, "Gastgeberin")
    await wait_state(host, "room")
    await wait_publishing(host, "host publishes")

    started = time.monotonic()
    await open_room(guest, slug, "Neu")
    await wait_for(
        lambda: guest.evaluate(
            "window.kreis && window.kreis.stats()"
            ".then(s => s.inbound.some(i => i.framesDecoded > 0))"
        ),
        20,
        "first remote frame",
    )
    join_ms = (time.monotonic() - started) * 1000
    print("JOIN_TIME_MS", round(join_ms))
    marks = await guest.evaluate(
        "Object.fromEntries(performance.getEntriesByType('mark')"
        ".filter(m => m.name.startsWith('kreis:')).map(m => [m.name, Math.round(m.startTime)]))"
    )
    print("JOIN_MARKS_MS (since navigation)", marks)
    assert join_ms < 10000


async def test_listener_without_devices_still_receives(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    """Someone who refuses camera and microphone can still join and listen."""
    slug = "nur-zuhoeren-bitte"
    leaders.append(await start_room(shared_server, slug))
    host, listener = await people.page(), await people.page()
    await listener.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('refused', 'NotAllowedError'));"
    )
    await open_room(host, slug, "Sprecherin")
    await listener.goto(f"/{slug}")
    await listener.click("#toggle-camera")  # refused: the page says so
    await listener.locator("#no-devices").wait_for(timeout=5000)
    await listener.fill("#name", "Zuhörer")
    await listener.check("#rules")
    await listener.click("#join")
    await wait_state(listener, "room")
    await wait_state(host, "room")
    assert await listener.evaluate("window.kreis.media") == {
        "mic": False,
        "camera": False,
        "screen": False,
    }
    await wait_for(lambda: receiving(listener, 1, 1), 30, "the listener hears and sees the host")
    listener_id = (await listener.evaluate("window.kreis.me"))["id"]

    async def shown_muted_at_host() -> bool:
        for entry in await host.evaluate("window.kreis.participants"):
            if entry["id"] == listener_id:
                return entry["mic"] is False and entry["camera"] is False
        return False

    await wait_for(shown_muted_at_host, 10, "the host sees the listener without devices")
