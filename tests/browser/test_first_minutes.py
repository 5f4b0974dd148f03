"""The first five minutes in the browser, for a volunteer leader and a guest in crisis
(issue 16), in German and English, against one real server:

- camera and microphone stay off until switched on; nothing is captured while waiting
  in the lobby unless the person asks for a self-view; the name field comes first; one
  sentence says that a leader lets people in; the tab title and a notice say "let in";
- a leader who leaves the password empty (or gives a wrong one) is told so and sends
  no `join`; "Start the meeting"; the invite link with its `#s=` fragment to copy;
- raised hands in the order raised, a notice, "lower hand"; an honest "ask to mute"
  the person may decline, the leader's "mute", "mute everyone", remove with "bar";
  the participant count always in sight;
- the second "Anna" reads "Anna (2)"; names that pass as the leader are refused;
- the control bar is one row at 1280 px and two rows on a 390×844 phone; shortcuts in
  a help dialog; focus rings and field borders at 3:1 or more;
- the help line on the pages that end a visit, the leader's own "meeting ended" page.

Other people are protocol clients (`KreisClient`) where a browser adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kreis_server import start_server
from meeting_pages import next_entrant, open_room, start_room, wait_for, wait_state
from playwright.async_api import Page
from walkthrough import AXE, HELP_LINE, VIEWPORTS, axe_violations, walk

from app.client import KreisClient, ServerError

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TRACKS = """(() => {
  const tracks = [];
  const md = navigator.mediaDevices;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    tracks.push(...stream.getTracks());
    return stream;
  };
  Object.defineProperty(window, "liveTracks", {
    get: () => tracks.filter((t) => t.readyState === "live").map((t) => t.kind),
  });
})();"""
"""Counts every track getUserMedia ever handed out, and which are still live."""


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server for the module, with a help line for the endings."""
    rooms: Any = {"help_line": f'"{HELP_LINE}"'}
    server = start_server(tmp_path_factory.mktemp("first-minutes"), rooms=rooms)
    try:
        yield server
    finally:
        server.stop()


async def live_tracks(page: Page) -> list[str]:
    return list(await page.evaluate("window.liveTracks"))


async def text(page: Page, selector: str) -> str:
    return (await page.text_content(selector)) or ""


async def switch_lang(page: Page) -> None:
    before = await page.evaluate("document.documentElement.lang")
    await page.click("#lang")
    await wait_for(lambda: _lang_is_not(page, before), 5, "the language switched")


async def _lang_is_not(page: Page, lang: str) -> bool:
    return bool(await page.evaluate("document.documentElement.lang") != lang)


async def guest_client(server: Any, slug: str, name: str) -> KreisClient:
    client = KreisClient(server.url)
    await client.connect()
    await client.send({"type": "join", "room": slug, "name": name, "invite": server.invite(slug)})
    return client


# ---- pre-join and lobby -----------------------------------------------------------


async def test_nothing_is_captured_until_switched_on(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "erst-wenn-ich-will"
    leader = await start_room(shared_server, slug, lobby=True)
    leaders.append(leader)
    page = await people.page("de-DE")
    await page.add_init_script(TRACKS)
    await page.goto(f"/{slug}?k={shared_server.invite(slug)}")
    await page.locator("#toggle-camera").wait_for(timeout=10000)

    # German: off, the name first, one sentence on who lets people in
    assert await page.get_attribute("#toggle-camera", "aria-pressed") == "false"
    assert await page.get_attribute("#toggle-mic", "aria-pressed") == "false"
    assert await text(page, "#toggle-camera .label") == "Kamera: aus"
    assert "Leitung lässt alle herein" in await text(page, "#prejoin-lead")
    first_field = await page.evaluate(
        "document.querySelector('#join-form input, #join-form select, #join-form button').id"
    )
    assert first_field == "name"
    assert await live_tracks(page) == []  # no camera light on arrival
    await switch_lang(page)
    assert await text(page, "#toggle-mic .label") == "Microphone: off"
    assert "A leader lets everyone in" in await text(page, "#prejoin-lead")

    # the person switches the camera on: a preview, one live track
    await page.click("#toggle-camera")
    await page.locator('#toggle-camera[aria-pressed="true"]').wait_for(timeout=10000)
    assert await page.is_visible("#preview")
    assert await live_tracks(page) == ["video"]
    await page.fill("#name", "Mira")
    await page.check("#rules")
    await page.click("#join")
    await wait_state(page, "lobby")
    await wait_for(lambda: _none_live(page), 5, "nothing captured in the lobby")
    assert await page.title() == "Waiting to be let in · Kreis"
    assert "Nobody can see or hear you yet" in await text(page, "#wait-text")

    # a self-view only on request, and off again
    await page.click("#selfview-toggle")
    await wait_for(lambda: _live_is(page, ["video"]), 10, "the self-view's camera")
    assert await page.is_visible("#selfview")
    await page.click("#selfview-toggle")
    await wait_for(lambda: _none_live(page), 5, "self-view off")

    # let in: the camera chosen before comes on (the microphone stays off), and the
    # tab title and a notice say so
    entrant = await next_entrant(leader)
    await leader.send({"type": "admit", "room": slug, "id": entrant["id"]})
    await wait_state(page, "room")
    await wait_for(lambda: _live_is(page, ["video"]), 10, "the camera in the room")
    assert await page.evaluate("window.kreis.media") == {
        "mic": False,
        "camera": True,
        "screen": False,
    }
    assert await page.title() == "In the meeting · Kreis"
    assert "You are in the meeting now." in await text(page, "#notice")
    await switch_lang(page)
    assert await page.title() == "Im Treffen · Kreis"


async def _none_live(page: Page) -> bool:
    return await live_tracks(page) == []


async def _live_is(page: Page, kinds: list[str]) -> bool:
    return sorted(await live_tracks(page)) == sorted(kinds)


# ---- the leader's way in ------------------------------------------------------------


async def test_leader_without_password_is_told_and_never_joins(
    shared_server: Any, people: Any
) -> None:
    slug = "leitung-ohne-passwort"
    page = await people.page("de-DE")
    await page.context.grant_permissions(
        ["camera", "microphone", "clipboard-read", "clipboard-write"]
    )
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    await page.goto(f"/{slug}#leader")
    await page.locator("#leader-group").wait_for(timeout=10000)
    assert await text(page, "#join") == "Treffen starten"
    await page.fill("#name", "Sabine")
    await page.check("#rules")
    await page.fill("#leader-group", shared_server.group)
    await page.click("#join")
    assert "gib bitte deine Gruppe und das Passwort ein" in await text(page, "#join-error")
    assert await page.get_attribute("#leader-password", "aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "leader-password"
    await switch_lang(page)
    assert await text(page, "#join") == "Start the meeting"
    await page.click("#join")
    assert "please enter your group and its password" in await text(page, "#join-error")

    # a wrong password: said so, and still no join
    await page.fill("#leader-password", "falsch-falsch-falsch")
    await page.click("#join")
    wrong = "Group or password is wrong"
    await wait_for(lambda: _has_text(page, "#join-error", wrong), 15, "login refused")
    assert await page.evaluate("window.kreis.state") == "prejoin"
    assert not [f for f in sent if '"type":"join"' in f.replace(" ", "")], sent

    # the right one starts the meeting; the invite link carries the room secret
    await page.fill("#leader-password", shared_server.password)
    await page.click("#join")
    await wait_state(page, "room")
    assert (await page.evaluate("window.kreis.me"))["role"] == "leader"
    await page.click("#btn-more")
    await page.click("#menu-invite")
    link = await page.evaluate("navigator.clipboard.readText()")
    assert f"/{slug}?k={shared_server.invite(slug)}#s=" in link, link
    await page.click("#btn-leader")
    assert await text(page, "#invite-url") == link


async def _has_text(page: Page, selector: str, wanted: str) -> bool:
    return wanted in await text(page, selector)


# ---- moderation ---------------------------------------------------------------------


async def browser_leader_in(page: Page, server: Any, slug: str) -> None:
    await open_room(page, slug, "Leitung", leader=(server.group, server.password), devices=False)
    await wait_state(page, "room")


async def test_hands_in_order_and_honest_muting(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "haende-der-reihe-nach"
    leaders.append(await start_room(shared_server, slug))  # lobby off: straight in
    lead = await people.page("de-DE")
    await browser_leader_in(lead, shared_server, slug)
    berta = await guest_client(shared_server, slug, "Berta")
    anna = await guest_client(shared_server, slug, "Anna")
    leaders.extend([berta, anna])
    berta_id = (await berta.expect("joined"))["id"]
    anna_id = (await anna.expect("joined"))["id"]
    await wait_for(lambda: _count_is(lead, "3"), 10, "the count in the control bar")
    assert await lead.is_hidden("#side")  # the count shows without opening the panel

    # Anna came second but raises first: the order is the raising, not the arriving
    await anna.send({"type": "hand", "raised": True})
    raised = "Anna hat die Hand gehoben"
    await wait_for(lambda: _has_text(lead, "#notice", raised), 10, "hand notice")
    await berta.send({"type": "hand", "raised": True})
    await lead.click("#btn-people")
    await wait_for(lambda: _hands(lead, ["Anna", "Berta"]), 10, "hands in the order raised")
    await switch_lang(lead)
    lower = lead.locator(f'#hands li[data-participant="{anna_id}"] [data-action="lower-hand"]')
    assert await lower.text_content() == "Lower hand"
    await lower.click()
    await wait_for(lambda: _hands(lead, ["Berta"]), 10, "Anna's hand lowered")
    assert not _entry(anna.latest("participants"), anna_id)["hand"]
    assert _entry(berta.latest("participants"), berta_id)["hand"]

    # mute everyone: every participant with a microphone on is muted
    await anna.send({"type": "media_state", "mic": True, "camera": False, "screen": False})
    await lead.locator("#mute-all").wait_for(timeout=10000)
    await lead.click("#mute-all")
    await lead.click("#confirm-yes")
    muted = await anna.expect("mute_request")
    assert muted["ask"] is False

    # remove, and bar: the same name cannot knock again
    row = lead.locator(f'#people li[data-participant="{anna_id}"]')
    await row.locator('[data-action="remove"]').click()
    assert "Do not let Anna back" in await text(lead, "#confirm-option")
    await lead.check("#confirm-check")
    await lead.click("#confirm-yes")
    removed = await anna.expect("removed")
    assert removed["barred"] is True
    again = await guest_client(shared_server, slug, "Anna")
    leaders.append(again)
    with pytest.raises(ServerError) as refused:
        await again.expect("joined", "lobby_status")
    assert refused.value.code == "barred"


async def test_ask_to_mute_is_a_request(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "bitte-nur-fragen"
    leaders.append(await start_room(shared_server, slug))
    lead, guest = await people.page(), await people.page("de-DE")
    await browser_leader_in(lead, shared_server, slug)
    await open_room(guest, slug, "Gast")
    await wait_state(guest, "room")
    guest_id = (await guest.evaluate("window.kreis.me"))["id"]
    await lead.click("#btn-people")
    row = lead.locator(f'#people li[data-participant="{guest_id}"]')
    ask = row.locator('[data-action="ask-mute"]')
    await wait_for(ask.is_enabled, 10, "the guest's microphone shows on")

    # asked: the guest sees the question in German and keeps the microphone on
    await ask.click()
    assert "Gast has been asked to mute." in await text(lead, "#notice")
    await guest.locator("#mute-ask").wait_for(timeout=10000)
    assert await text(guest, "#mute-ask-text") == (
        "Die Leitung bittet dich, dein Mikrofon stummzuschalten."
    )
    await guest.click("#mute-ask-no")
    assert (await guest.evaluate("window.kreis.media"))["mic"] is True

    # asked again, in English, and accepted
    await switch_lang(guest)
    await ask.click()
    await guest.locator("#mute-ask").wait_for(timeout=10000)
    assert await text(guest, "#mute-ask-yes") == "Mute now"
    await guest.click("#mute-ask-yes")
    await wait_for(lambda: _mic_is(guest, False), 10, "muted after saying yes")

    # the leader's "mute" mutes, and says so
    await guest.click("#btn-mic")
    await wait_for(lambda: _mic_is(guest, True), 10, "microphone on again")
    mute = row.locator('[data-action="mute"]')
    await wait_for(mute.is_enabled, 10, "the leader sees it on")
    await mute.click()
    await wait_for(lambda: _mic_is(guest, False), 10, "muted by the leader")
    assert "The leader has muted your microphone." in await text(guest, "#notice")


async def _mic_is(page: Page, on: bool) -> bool:
    return bool((await page.evaluate("window.kreis.media"))["mic"] is on)


async def _count_is(page: Page, n: str) -> bool:
    return await text(page, "#people-count") == n


async def _hands(page: Page, names: list[str]) -> bool:
    return await page.locator("#hands li .person-name").all_text_contents() == names


def _entry(msg: dict[str, Any] | None, pid: str) -> dict[str, Any]:
    assert msg is not None
    found: dict[str, Any] = next(p for p in msg["participants"] if p["id"] == pid)
    return found


# ---- names --------------------------------------------------------------------------


async def test_same_names_are_told_apart_and_the_leader_label_is_refused(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "dreimal-anna-bitte"
    leaders.append(await start_room(shared_server, slug, lobby=True))
    lead = await people.page("de-DE")
    await browser_leader_in(lead, shared_server, slug)
    for _ in range(3):
        leaders.append(await guest_client(shared_server, slug, "Anna"))
    await lead.click("#btn-leader")
    names = lead.locator("#lobby-list .person-name")
    await wait_for(lambda: _texts_are(names, ["Anna", "Anna (2)", "Anna (3)"]), 10, "numbers")
    assert "Anna (3) hereinlassen" in [
        await b.get_attribute("aria-label") or ""
        for b in await lead.locator('#lobby-list [data-action="admit"]').all()
    ]

    guest = await people.page("de-DE")
    for name in ("Leitung Anna", "Anna (Leitung)", "Co-Leitung Anna"):
        await guest.goto(f"/{slug}?k={shared_server.invite(slug)}")
        await guest.fill("#name", name)
        await guest.check("#rules")
        await guest.click("#join")
        await wait_for(
            lambda: _has_text(guest, "#join-error", "der Leitung der Gruppe vorbehalten"), 10, name
        )
    await switch_lang(guest)
    await guest.click("#join")
    await wait_for(lambda: _has_text(guest, "#join-error", "kept for the group's leader"), 10, "en")


async def _texts_are(locator: Any, wanted: list[str]) -> bool:
    return bool(await locator.all_text_contents() == wanted)


# ---- control bar, shortcuts, contrast -------------------------------------------------


ROWS = """() => {
  const tops = new Set();
  for (const b of document.querySelectorAll("#controls .control")) {
    if (b.offsetParent === null) continue;
    tops.add(Math.round(b.getBoundingClientRect().top));
  }
  const bar = document.getElementById("controls");
  return {rows: tops.size, overflow: bar.scrollWidth > bar.getBoundingClientRect().width + 1};
}"""

CONTRAST = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => {
    const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p);
    return (x + 0.05) / (y + 0.05);
  };
  const style = (el) => getComputedStyle(el);
  const out = {};
  const mic = document.activeElement; // a control reached by keyboard: its ring shows
  const ring = style(mic).outlineColor;
  out.ring_vs_bar = ratio(ring, style(document.getElementById("controls")).backgroundColor);
  out.ring_vs_button = ratio(ring, style(mic).backgroundColor);
  const input = document.getElementById("chat-input");
  out.field_vs_white = ratio(style(input).borderTopColor, "rgb(255, 255, 255)");
  out.field_vs_page = ratio(style(input).borderTopColor, style(document.body).backgroundColor);
  return out;
}"""


async def test_control_bar_rows_and_shortcuts(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "eine-reihe-reicht"
    leaders.append(await start_room(shared_server, slug))
    lead = await people.page("de-DE")
    await browser_leader_in(lead, shared_server, slug)
    for lang in ("de", "en"):
        await lead.set_viewport_size({"width": 1280, "height": 800})
        assert await lead.evaluate(ROWS) == {"rows": 1, "overflow": False}, lang
        await lead.set_viewport_size({"width": 390, "height": 844})
        assert await lead.evaluate(ROWS) == {"rows": 2, "overflow": False}, lang
        if lang == "de":
            await switch_lang(lead)
    await lead.set_viewport_size({"width": 1280, "height": 800})

    # shortcuts: listed in a dialog; M switches the microphone
    await lead.locator("#tiles").click()
    await lead.keyboard.press("?")
    await lead.locator("#shortcuts").wait_for(timeout=5000)
    listed = await lead.locator("#shortcuts-list dd").all_text_contents()
    assert "Microphone on/off" in listed and "Raise or lower hand" in listed
    await lead.click("#shortcuts-close")
    await lead.keyboard.press("m")
    await wait_for(lambda: _mic_is(lead, True), 10, "M switched the microphone on")
    await lead.keyboard.press("h")
    await lead.locator('#btn-hand[aria-pressed="true"]').wait_for(timeout=10000)


async def test_focus_ring_and_field_borders_reach_3_to_1(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "ring-und-rand-sichtbar"
    leaders.append(await start_room(shared_server, slug))
    lead = await people.page()
    await browser_leader_in(lead, shared_server, slug)
    await lead.click("#btn-chat")
    await lead.focus("#btn-leave")
    await lead.keyboard.press("Shift+Tab")  # by keyboard, so the focus ring shows
    assert await lead.evaluate("document.activeElement.classList.contains('control')")
    ratios = await lead.evaluate(CONTRAST)
    assert all(v >= 3 for v in ratios.values()), ratios


# ---- endings ------------------------------------------------------------------------


async def test_endings_show_the_help_line_and_the_leaders_own_page(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    slug = "wie-es-endet-bitte"
    lead, guest, denied = (
        await people.page("de-DE"),
        await people.page("de-DE"),
        await people.page(),
    )
    await browser_leader_in(lead, shared_server, slug)

    # denied at the door: the help line
    await open_room(denied, slug, "Nicht heute", invite=shared_server.invite(slug), devices=False)
    await wait_state(denied, "lobby")
    await lead.locator('#lobby-list [data-action="admit"]').wait_for(state="attached")
    if await lead.get_attribute("#btn-leader", "aria-expanded") != "true":
        await lead.click("#btn-leader")  # a knock opens it by itself, usually
    await lead.locator('#lobby-list [data-action="admit"]').wait_for(timeout=10000)
    await lead.locator("#lobby-list button", has_text="Ablehnen").click()
    await wait_state(denied, "ended")
    assert await text(denied, "#help-line") == HELP_LINE
    assert await text(denied, "#help-title") == "Need someone to talk to now?"

    # let in, then the leader ends: the guest's goodbye with the help line, the
    # leader's own page without it
    await open_room(guest, slug, "Gast", invite=shared_server.invite(slug), devices=False)
    await wait_state(guest, "lobby")
    await lead.locator('#lobby-list [data-action="admit"]').click()
    await wait_state(guest, "room")
    await lead.click("#end-room")
    await lead.click("#confirm-yes")
    await wait_state(guest, "ended")
    await wait_state(lead, "ended")
    assert await text(guest, "#ended-title") == "Auf Wiedersehen"
    assert await text(guest, "#help-line") == HELP_LINE
    assert await guest.is_visible("#ended-help")
    assert await text(lead, "#ended-title") == "Das Treffen ist beendet"
    assert "Du hast das Treffen für alle beendet" in await text(lead, "#ended-text")
    assert await text(lead, "#rejoin") == "Wieder starten"
    assert await lead.is_hidden("#ended-help")
    await switch_lang(lead)
    assert await text(lead, "#ended-title") == "The meeting has ended"
    await switch_lang(guest)
    assert await text(guest, "#help-title") == "Need someone to talk to now?"


async def test_devices_can_still_be_switched_on_after_a_refusal(
    shared_server: Any, people: Any
) -> None:
    """Someone whose browser refuses the camera is told, and can still join."""
    page = await people.page()
    await page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('refused', 'NotAllowedError'));"
    )
    await page.goto("/kamera-verweigert")
    await page.click("#toggle-camera")
    await page.locator("#no-devices").wait_for(timeout=5000)
    assert await page.get_attribute("#toggle-camera", "aria-pressed") == "false"


# ---- safety words ------------------------------------------------------------------


async def test_safety_number_is_the_same_in_german_and_english(
    shared_server: Any, people: Any, leaders: list[Any]
) -> None:
    """A mixed group compares one number, read out in any language, and each page says
    what to do if it differs."""
    slug = "gleiche-nummer-fuer-alle"
    leader = await start_room(shared_server, slug)
    leaders.append(leader)
    await leader.send({"type": "set_e2ee", "room": slug, "on": True})
    await leader.expect("room_state")
    de, en = await people.page("de-DE"), await people.page("en-US")
    for page, name in ((de, "Dora"), (en, "Emma")):
        await open_room(page, slug, name, invite=shared_server.invite(slug), devices=False)
    for page in (de, en):
        await wait_state(page, "room")

    async def same_digits() -> str | None:
        shown = [await text(p, "#e2ee-status .digits") for p in (de, en)]
        return shown[0] if shown[0] and shown[0] == shown[1] else None

    digits = await wait_for(same_digits, 30, "one safety number on both pages")
    assert len(digits.replace(" ", "")) >= 15 and digits.replace(" ", "").isdigit(), digits
    assert "Weicht sie auf einem Bildschirm ab" in await text(de, "#e2ee-status .e2ee-differ")
    assert "If it differs on any screen" in await text(en, "#e2ee-status .e2ee-differ")
    assert "leave" in await text(en, "#e2ee-status .e2ee-differ")


# ---- the whole walk, checked by axe-core ----------------------------------------------


@pytest.mark.timeout(600)  # fifteen screens, two sizes each: the longest test here
async def test_every_screen_of_the_walk_passes_axe(browser: Any, shared_server: Any) -> None:
    """axe-core (WCAG 2.x A and AA) on every screen, at 1280 px and on a 390×844 phone."""
    assert AXE.exists(), "axe-core is missing: npm ci --prefix tests (scripts/test does it)"
    found: dict[str, Any] = {}
    visited: list[str] = []

    async def visit(name: str, page: Page) -> None:
        for viewport, (width, height) in VIEWPORTS.items():
            await page.set_viewport_size({"width": width, "height": height})
            violations = await axe_violations(page)
            if violations:
                found[f"{name} ({viewport})"] = violations
        width, height = VIEWPORTS["desktop"]
        await page.set_viewport_size({"width": width, "height": height})
        visited.append(name)

    await walk(browser, shared_server, visit, slug="der-ganze-weg")
    assert len(visited) >= 14, visited
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)
