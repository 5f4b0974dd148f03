"""E2EE against a hostile server: real Chromium pages, the real server, a relay that lies.

The pages reach the server through `HostileRelay` (tests/e2ee/hostile_relay.py), which
rewrites signalling the way a compromised server could; the SFU's payload tap
(tests/vp8_tap.py) shows what the pages really send. Each test is one attack from
docs/security.md ("The server itself"), and each was seen failing against a build with
that defence taken out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import os
import time
from typing import Any

import pytest
from chromium_flags import launched
from hostile_relay import (
    HostileRelay,
    RelayedSocket,
    RelayIdentity,
    decrypt_frame,
    key_id_of,
)
from page_checks import media, start_room, wait_for
from playwright.async_api import Browser, Page
from test_e2ee_meeting import e2ee, until
from test_e2ee_server_tap import decoding, inbound_video, intruder_joins, publish_plain_vp8
from vp8_tap import HOOKS, MAGIC, arm_tap, frames_of, tapped

pytestmark = [pytest.mark.e2ee, pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


RESUME_BOUND = 3.0
"""Seconds from a resumed `joined` until the others decode the publisher's video again."""


def new_secret() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")


async def pages_in(
    chromium: Browser, relay: HostileRelay, slug: str, names: list[str], fragment: str
) -> tuple[list[Page], list[str]]:
    """Browsers that open the room through the relay, with the link's fragment."""
    pages: list[Page] = []
    for name in names:
        context = await chromium.new_context(base_url=relay.url, locale="en-US")
        context.set_default_navigation_timeout(90_000)  # a busy machine loads slowly
        await context.grant_permissions(["camera", "microphone"])
        page = await context.new_page()
        await page.goto(f"/{slug}{fragment}")
        await page.click("#toggle-camera")  # camera and microphone start off
        await page.click("#toggle-mic")
        await page.fill("#name", name)
        await page.check("#rules")
        await page.click("#join")
        pages.append(page)
    for page in pages:
        await until(page, "window.kreis && window.kreis.state === 'room'", 20, "joined")
    ids = [(await p.evaluate("window.kreis.me"))["id"] for p in pages]
    return pages, ids


async def encrypted_meeting(
    chromium: Browser, server: Any, relay: HostileRelay, slug: str, names: list[str], fragment: str
) -> tuple[Any, list[Page], list[str]]:
    leader = await start_room(server, slug)
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    pages, ids = await pages_in(chromium, relay, slug, names, fragment)
    for page, pid in zip(pages, ids, strict=True):
        others = set(ids) - {pid}

        async def show(page: Page = page) -> Any:
            return (await media(page), await e2ee(page))

        await wait_for(functools.partial(decoding, page, others, "on"), 40, "e2ee media", show)
    return leader, pages, ids


async def status(page: Page) -> str:
    return str(await page.locator("#e2ee-status").text_content() or "")


# --- 1: a forged switch-off -------------------------------------------------------------


def forge_off(sock: RelayedSocket, msg: dict[str, Any]) -> dict[str, Any]:
    """The server says E2EE is off, and that everyone went clear."""
    msg = copy.deepcopy(msg)
    if msg.get("type") in ("room_state", "joined") and isinstance(msg.get("settings"), dict):
        msg["settings"]["e2ee"] = False
    if msg.get("type") == "participants":
        for entry in msg.get("participants", []):
            entry["e2ee"] = "off"
    return msg


async def test_forged_switch_off_sends_nothing_clear_until_confirmed(server_factory: Any) -> None:
    server = server_factory("forged-off", **HOOKS)
    slug = "gefaelschtes-aus"
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], f"#s={new_secret()}"
        )
        relay.down_hooks.append(forge_off)
        await leader.send({"type": "set_lock", "room": slug, "locked": False})  # a room_state
        for sock in relay.sockets:  # and a participants list, both forged
            if sock.id and "participants" in sock.last:
                await sock.send_down(forge_off(sock, sock.last["participants"]))
        for page in pages:
            await page.locator("#e2ee-banner").wait_for(state="visible", timeout=10_000)
        await asyncio.sleep(1.5)  # longer than the engine's switch delay

        # Nothing any page sends is clear, and nothing clear is played.
        await arm_tap(server)
        for pid in ids:
            frames = [f for f, _ in frames_of(await tapped(server, pid))]
            assert frames and all(f.endswith(MAGIC) for f in frames), pid
        for page in pages:
            s = await e2ee(page)
            assert s["sentClear"] == 0 and s["passedClear"] == 0, s
            assert s["trust"]["held"] is True, s["trust"]
            text = str(await page.locator("#e2ee-banner").text_content())
            assert "switched off" in text, text

        # The person on the first page confirms: only that page goes clear.
        await pages[0].click("#e2ee-banner .e2ee-confirm-clear")
        await until(pages[0], "window.kreisE2ee.state === 'off'", 10, "first page off")
        await asyncio.sleep(1.5)
        await arm_tap(server)
        first = [f for f, _ in frames_of(await tapped(server, ids[0]))]
        assert first and not any(f.endswith(MAGIC) for f in first)
        second = [f for f, _ in frames_of(await tapped(server, ids[1]))]
        assert second and all(f.endswith(MAGIC) for f in second)
        assert await pages[1].locator("#e2ee-banner").is_visible()
        assert (await e2ee(pages[1]))["passedClear"] == 0
        await leader.close()


# --- 2: a ghost entry ---------------------------------------------------------------------

GHOST = "p_GhostGhostGhost0"


def add_ghost(identity: RelayIdentity) -> Any:
    def hook(sock: RelayedSocket, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("type") != "participants":
            return msg
        msg = copy.deepcopy(msg)
        msg["participants"].append(
            {
                "id": GHOST,
                "name": "Geist",
                "role": "guest",
                "kind": "browser",
                "mic": False,
                "camera": False,
                "screen": False,
                "hand": False,
                "e2ee": "on",
                "public_key": identity.public_key,
                "auth": base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
                "commit": None,
                "reveal": None,
                "away": False,
            }
        )
        return msg

    return hook


async def test_ghost_entry_gets_no_key_and_is_shown_unverified(server_factory: Any) -> None:
    server = server_factory("ghost")
    slug = "geist-im-kreis"
    identity = RelayIdentity()
    async with launched() as chromium, HostileRelay(server.url) as relay:
        relay.down_hooks.append(add_ghost(identity))
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], f"#s={new_secret()}"
        )
        await asyncio.sleep(1.0)
        assert relay.keys, "the pages exchanged no keys at all"
        assert not [k for k in relay.keys if k["to"] == GHOST], relay.keys
        for page in pages:
            trust = await page.evaluate("window.kreisE2ee.trust")
            members = {m["id"]: m["verified"] for m in trust["members"]}
            assert members[GHOST] is False, members
            assert all(members[pid] is True for pid in ids if pid in members), members
            text = await status(page)
            assert "Not verified" in text and "Geist" in text, text
        await leader.close()


# --- 3: a key swap --------------------------------------------------------------------------


def swap_key(victim: str, target: str, identity: RelayIdentity) -> Any:
    """Shows the victim the relay's public key in place of target's."""

    def hook(sock: RelayedSocket, msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("type") != "participants" or sock.id != victim:
            return msg
        msg = copy.deepcopy(msg)
        for entry in msg["participants"]:
            if entry["id"] == target:
                entry["public_key"] = identity.public_key
        return msg

    return hook


async def test_key_swap_gets_a_fresh_key_the_relay_cannot_use(server_factory: Any) -> None:
    """Attack 3 with the room secret: the swapped entry does not verify, so a renews its key
    and the relay gets nothing it can open."""
    server = server_factory("swap")
    slug = "schluesseltausch"
    identity = RelayIdentity()
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], f"#s={new_secret()}"
        )
        a, b = ids
        before = (await e2ee(pages[0]))["keyIds"]["self"]
        sent_before = len(relay.keys)
        await rewrite_from_now(relay, a, swap_key(a, b, identity))

        async def fresh() -> bool:
            return bool((await e2ee(pages[0]))["keyIds"]["self"] != before)

        await wait_for(fresh, 10, "a fresh media key after the swap")
        await asyncio.sleep(1.0)
        after = (await e2ee(pages[0]))["keyIds"]["self"]
        assert after != before
        # Whatever a sent for b after the swap, the relay's key opens none of it.
        a_key = next(
            e["public_key"]
            for e in (await pages[1].evaluate("window.kreis.participants"))
            if e["id"] == a
        )
        for k in relay.keys[sent_before:]:
            if k["from"] == a and k["to"] == b:
                with pytest.raises(Exception):  # noqa: B017 - any failure to open is the point
                    identity.unwrap(a_key, a, b, k["payload"])
        trust = await pages[0].evaluate("window.kreisE2ee.trust")
        assert {m["id"]: m["verified"] for m in trust["members"]}[b] is False
        await leader.close()


async def test_key_swap_without_the_secret_never_hands_out_the_current_key(
    server_factory: Any,
) -> None:
    """Attack 3 where nothing else stands in the way: a room without the secret (everyone
    unverified, keys to every listed public key). The relay swaps b's public key at a and
    gets a key from a, but only a fresh one: it opens nothing a sent before the swap."""
    server = server_factory("swap-plain", **HOOKS)
    slug = "tausch-ohne-geheimnis"
    identity = RelayIdentity()
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, _pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], ""
        )
        a, b = ids
        await arm_tap(server)
        earlier = [f for f, _ in frames_of(await tapped(server, a)) if f.endswith(MAGIC)]
        assert earlier
        sent_before = len(relay.keys)
        await rewrite_from_now(relay, a, swap_key(a, b, identity))
        listed = relay.by_id(a).last["participants"]["participants"]
        a_key = next(e["public_key"] for e in listed if e["id"] == a)

        def got() -> list[tuple[int, bytes]]:
            out = []
            for k in relay.keys[sent_before:]:
                if k["from"] == a and k["to"] == b:
                    with contextlib.suppress(Exception):
                        out.append(identity.unwrap(a_key, a, b, k["payload"]))
            return out

        await wait_for(lambda: asyncio.sleep(0, bool(got())), 10, "a key for the swapped entry")
        (key_id, raw), *_ = got()
        # The relay's key is a's real key from now on (no secret: the safety number is the
        # only defence left, and it changes) ...
        await asyncio.sleep(1.5)  # past the switch delay
        await arm_tap(server)
        later = [f for f, _ in frames_of(await tapped(server, a)) if key_id_of(f) == key_id]
        assert later and decrypt_frame(raw, later[-1])
        # ... but it opens nothing from before the swap: a fresh key, not the current one.
        assert all(key_id_of(f) != key_id for f in earlier)
        for frame in earlier:
            with pytest.raises(Exception):  # noqa: B017 - any failure to open is the point
                decrypt_frame(raw, frame)
        await leader.close()


# --- 4: a reveal that breaks its commitment ---------------------------------------------------


async def rewrite_from_now(relay: HostileRelay, who: str, hook: Any) -> None:
    """`hook` rewrites every message down to `who` from now on, starting with the last
    `participants` list, sent to it again rewritten."""
    relay.down_hooks.append(hook)
    sock = relay.by_id(who)
    await sock.send_down(hook(sock, sock.last["participants"]))


async def one_safety_number(pages: list[Page]) -> None:
    """Waits until both pages show the same safety number."""

    async def both() -> bool:
        sas = [await p.evaluate("window.kreisE2ee.sas") for p in pages]
        return sas[0] is not None and sas[0] == sas[1]

    await wait_for(both, 20, "one safety number")


async def test_a_reveal_that_breaks_its_commitment_is_shown(server_factory: Any) -> None:
    server = server_factory("commit")
    slug = "zusage-gebrochen"
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], f"#s={new_secret()}"
        )
        a, b = ids
        await one_safety_number(pages)

        def bad_reveal(sock: RelayedSocket, msg: dict[str, Any]) -> dict[str, Any]:
            if msg.get("type") != "participants" or sock.id != a:
                return msg
            msg = copy.deepcopy(msg)
            for entry in msg["participants"]:
                if entry["id"] == b and entry.get("reveal"):
                    entry["reveal"] = ("A" if entry["reveal"][0] != "A" else "B") + entry["reveal"][
                        1:
                    ]
            return msg

        await rewrite_from_now(relay, a, bad_reveal)
        await until(pages[0], "window.kreisE2ee.trust.problems.length > 0", 10, "a problem")
        trust = await pages[0].evaluate("window.kreisE2ee.trust")
        assert trust["problems"] == [b], trust
        assert await pages[0].evaluate("window.kreisE2ee.sas") is None
        text = await status(pages[0])
        assert "Safety check failed for: Birke" in text, text
        await leader.close()


async def test_safety_rounds_abandoned_after_a_reveal_are_counted_and_end(
    server_factory: Any,
) -> None:
    """A server that abandons a round each time the victim has revealed (it shows another
    member's commitment for a higher round) gets one try per round at two views with
    equal numbers; after three the page stops taking part and says why."""
    server = server_factory("rounds")
    slug = "neu-gestartet"
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], f"#s={new_secret()}"
        )
        a, b = ids
        await one_safety_number(pages)
        bumps: list[str] = []

        def abandon(sock: RelayedSocket, msg: dict[str, Any]) -> dict[str, Any]:
            """Once a has revealed for a round, b's commitment shows a round higher."""
            if msg.get("type") != "participants" or sock.id != a:
                return msg
            entries = {e["id"]: e for e in msg["participants"]}
            mine, theirs = entries.get(a, {}), entries.get(b, {})
            if not mine.get("reveal") or not isinstance(theirs.get("commit"), str):
                return msg
            epoch, round_, digest = theirs["commit"].split(".")
            if f"{epoch}.{round_}" != ".".join(str(mine.get("commit")).split(".")[:2]):
                return msg
            msg = copy.deepcopy(msg)
            for entry in msg["participants"]:
                if entry["id"] == b:
                    entry["commit"] = f"{epoch}.{int(round_) + 1}.{digest}"
                    entry["reveal"] = None
                    bumps.append(entry["commit"])
            return msg

        await rewrite_from_now(relay, a, abandon)
        await until(pages[0], "window.kreisE2ee.trust.gaveUp === true", 20, "a gives up")
        trust = await pages[0].evaluate("window.kreisE2ee.trust")
        assert trust["abandoned"] == 3, trust
        assert len(bumps) >= 3, bumps
        assert await pages[0].evaluate("window.kreisE2ee.sas") is None
        text = await status(pages[0])
        assert "The safety check was started over 3 times without a result" in text, text
        # it stays given up: more bumps do not start more rounds with a
        await asyncio.sleep(2.0)
        again = await pages[0].evaluate("window.kreisE2ee.trust")
        assert again["abandoned"] == 3 and again["gaveUp"], again
        await leader.close()


# --- 5: a transceiver that appears in a later offer ----------------------------------------


def hide_newcomer(victim: RelayedSocket, known: set[str], hidden: dict[str, Any]) -> Any:
    """A relay hook: the first down offer with a track of someone not in `known` reaches
    `victim` without naming that track (the offer is kept in `hidden`, to send later)."""

    def hook(sock: RelayedSocket, msg: dict[str, Any]) -> dict[str, Any]:
        if sock is not victim or msg.get("type") != "down_offer" or hidden:
            return msg
        theirs = [t for t in msg.get("tracks", []) if t["participant"] not in known]
        if not theirs:
            return msg
        hidden.update(msg)
        msg = copy.deepcopy(msg)
        msg["tracks"] = [t for t in msg["tracks"] if t["participant"] in known]
        return msg

    return hook


async def test_a_late_transceiver_never_renders_clear_media(server_factory: Any) -> None:
    server = server_factory("late")
    slug = "spaeter-empfaenger"
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], ""
        )
        victim = relay.by_id(ids[1])
        hidden: dict[str, Any] = {}

        relay.down_hooks.append(hide_newcomer(victim, set(ids), hidden))
        intruder, evil = await intruder_joins(server, leader, slug)
        pc = await publish_plain_vp8(intruder)
        try:
            await wait_for(lambda: asyncio.sleep(0, bool(hidden)), 20, "the hidden offer")
            await asyncio.sleep(2.0)  # the victim answered it
            # The later offer names the track: a transform set now would come too late.
            await victim.send_down(dict(hidden))

            async def receiving() -> bool:
                s = await inbound_video(pages[1], evil)
                return s is not None and s["packetsReceived"] > 100

            await wait_for(receiving, 20, "the intruder's packets at the victim")
            await asyncio.sleep(2.0)
            s = await inbound_video(pages[1], evil)
            assert s is not None and s["framesDecoded"] == 0, s
            stats = await e2ee(pages[1])
            assert stats["passedClear"] == 0, stats
            assert stats["perParticipant"].get(evil, {}).get("decrypted", 0) == 0, stats
            m = await media(pages[1])
            assert m[ids[0]]["frames"] > 0
        finally:
            await pc.close()
            await intruder.close()
            await leader.close()


# --- 6: resume with E2EE on ------------------------------------------------------------------


MARKS = """performance.getEntriesByType('mark')
  .filter((m) => m.name.startsWith('kreis:'))
  .map((m) => [m.name, performance.timeOrigin + m.startTime])"""
"""A page's own timeline (peers.js and app.js marks), as wall-clock milliseconds."""


async def camera_of(page: Page, participant: str) -> tuple[str, int] | None:
    """(mid, frames decoded) of a participant's camera at a page, or None."""
    snap = await page.evaluate("window.kreis.stats()")
    for s in snap["inbound"]:
        if s["participant"] == participant and s["source"] == "camera":
            return str(s["mid"]), int(s["framesDecoded"])
    return None


async def test_resume_with_e2ee_is_decoded_again_within_3_s(server_factory: Any) -> None:
    server = server_factory("resume")
    slug = "wieder-da"
    async with launched() as chromium, HostileRelay(server.url) as relay:
        leader, pages, ids = await encrypted_meeting(
            chromium, server, relay, slug, ["Ahorn", "Birke"], f"#s={new_secret()}"
        )
        a = ids[0]
        sockets_before = len(relay.sockets)
        trace: list[Any] = []  # what happened when: shown if the bound is missed
        back: list[float] = []
        wall: list[float] = []

        def note(way: str) -> Any:
            def hook(sock: RelayedSocket, m: dict[str, Any]) -> dict[str, Any]:
                now = time.monotonic()
                trace.append((now, way, sock.index, m.get("type")))
                if m.get("type") == "joined" and sock.index > sockets_before and not back:
                    back.append(now)  # the page is back on the server
                    wall.append(time.time())
                return m

            return hook

        relay.down_hooks.append(note("down"))
        relay.up_hooks.append(note("up"))
        seen = await camera_of(pages[1], a)
        assert seen is not None and seen[1] > 0, seen
        # An outage longer than the old keys' grace (5 s): b has forgotten a's key, and a
        # must start afresh (a new key, a new up connection, a keyframe b can decrypt).
        relay.refuse_until = time.monotonic() + 6.0
        await relay.by_id(a).drop()
        await wait_for(lambda: asyncio.sleep(0, bool(back)), 20, "a resumes with its token")
        # What b decoded of a until now (its old key expired during the outage; the server
        # may have taken a's tracks away already): only frames of a's new session count.
        old = await camera_of(pages[1], a)

        async def decoded_again() -> bool:
            now = await camera_of(pages[1], a)
            if now is None:
                return False
            return now[1] > (old[1] if old is not None and now[0] == old[0] else 0)

        async def show() -> str:
            """The relay's trace and each page's own marks, in seconds after a is back."""
            rows = [f"{t - back[0]:+.2f} relay {way} #{n} {kind}" for t, way, n, kind in trace]
            for name, page in zip("ab", pages, strict=True):
                marks = await page.evaluate(MARKS)
                rows += [f"{t / 1000 - wall_back:+.2f} page {name} {m}" for m, t in marks]
            s = await e2ee(pages[1])
            rows.append(f"b: droppedBy {s['droppedBy']} keyframesAsked {s.get('keyframesAsked')}")
            return "\n".join(sorted(rows))

        wall_back = wall[0]
        deadline = back[0] + RESUME_BOUND
        while not await decoded_again():
            assert time.monotonic() < deadline, await show()
            await asyncio.sleep(0.05)
        took = time.monotonic() - back[0]
        print(f"resume: b decodes a again {took:.2f} s after a is back")
        print(await show())
        assert took < RESUME_BOUND, (took, await show())
        # and still after the old keys' grace (5 s) has long passed
        await asyncio.sleep(6.0)
        mid = (await media(pages[1]))[a]["frames"]
        await asyncio.sleep(2.0)
        assert (await media(pages[1]))[a]["frames"] > mid + 10
        await leader.close()
