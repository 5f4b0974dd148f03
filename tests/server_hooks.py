"""Test-only endpoints that let the privacy and E2EE tests look inside a running server.

They are part of the test harness, not of the product: `tests/serve_with_hooks.py`
builds the app with `app.server.create_app` and then calls `add_test_hooks(app)`. No
environment variable or setting switches them on in a production `kreis serve`.

"No trace of a meeting once it ends" covers the process's memory as much as its disk.
The trace-audit test (tests/privacy) ends a room and then asks the server, through
`POST /_test/memory`, whether any object it can still reach holds one of the meeting's
distinctive strings (a guest name, the slug, a chat line) and how many room-like objects
(`Room`, `Participant`, `Lobby`, …) are still alive after a full garbage collection.

Even in the harness the endpoints answer only loopback peers.

The strings arrive base64-encoded, so the request itself does not put them into memory
in plain form; the one decoded copy the search needs is skipped by identity.

A second hook, the payload tap, lets the E2EE tests check what the SFU forwards:
`POST /_test/tap` (`{"limit": 50, "keyframe": true}`) clears and arms a recorder that
keeps, per publisher participant id, the first `limit` forwarded video RTP payloads
(bytes after the RTP header); `GET /_test/tap?participant=…` returns them base64-encoded.
`keyframe` asks every publisher for a keyframe right after arming. `limit` 0 disarms.
Nothing is recorded until a test arms it.

Deutsch: Nur für Tests, vom Testaufbau hinzugefügt (nie über die Umgebung
einschaltbar): prüft, ob nach dem Ende eines Raums noch etwas von ihm im
Arbeitsspeicher des Servers erreichbar ist.
"""

from __future__ import annotations

import base64
import gc
import types
from collections import Counter
from typing import Any

from aiohttp import web

from app.security import peer_address
from app.server import HUB_KEY

ROOM_LIKE = ("Room", "Participant", "Lobby", "Entrant", "Member", "Chat", "Resume", "Waiting")
"""Class-name fragments that mark per-meeting objects in `app.*` and `sfu.*`."""
PER_CONNECTION = ("Connection", "UpConnection", "DownConnection", "RtpUpTrack", "RtpDownTrack")
"""Exact class names of per-connection objects: none may outlive its socket."""
SINGLETON_SUFFIXES = ("Store", "Config", "Registry", "Limiter", "Settings", "Placement")
"""Long-lived holders (the room store itself, configuration) are not meeting traces."""
MAX_NEEDLES = 32
MAX_TAP_PACKETS = 1000


class PayloadTap:
    """Records the first `limit` forwarded video payloads per publisher once armed;
    installed as `Router.payload_tap` (sfu) by `add_test_hooks`."""

    def __init__(self) -> None:
        self.limit = 0
        self.payloads: dict[str, list[bytes]] = {}

    def arm(self, limit: int) -> None:
        self.payloads = {}
        self.limit = limit

    def __call__(self, participant: str, kind: str, payload: bytes) -> None:
        if self.limit <= 0 or kind != "video" or not payload:
            return
        got = self.payloads.setdefault(participant, [])
        if len(got) < self.limit:
            got.append(bytes(payload))


TAP = PayloadTap()


def _reachable_text(skip: set[int]) -> list[tuple[str | bytes, Any]]:
    """Every str/bytes object referenced by a reachable container. Strings are not
    gc-tracked, and neither are dicts or tuples holding only atoms, so untracked
    containers found on the way are walked as well."""
    seen: set[int] = set()
    found: list[tuple[str | bytes, Any]] = []
    pending: list[Any] = gc.get_objects()
    walked: set[int] = set()
    while pending:
        container = pending.pop()
        for ref in gc.get_referents(container):
            if isinstance(ref, (str, bytes, bytearray)):
                if id(ref) not in skip and id(ref) not in seen:
                    seen.add(id(ref))
                    text = bytes(ref) if isinstance(ref, bytearray) else ref
                    found.append((text, container))
            elif not gc.is_tracked(ref) and id(ref) not in walked:
                walked.add(id(ref))
                pending.append(ref)
    return found


def _describe(container: Any) -> str:
    """Where a string was found: the container's type and, one level up, who holds
    the container (for a dict usually the object whose `__dict__` it is)."""
    own = type(container).__qualname__
    above = sorted(
        {
            f"coroutine {r.__qualname__}"
            if isinstance(r, types.CoroutineType)
            else f"{type(r).__module__}.{type(r).__qualname__}"
            for r in gc.get_referrers(container)
            if not isinstance(r, list) or len(r) < 10000
        }
    )[:6]
    return f"{own} <- {', '.join(above)}"


def search_memory(needles: list[str]) -> dict[str, Any]:
    """Which needles occur (as substrings) in reachable strings, and the live room-like
    objects of the server's own modules, after a full collection."""
    gc.collect()
    encoded = [n.encode("utf-8") for n in needles]
    skip = {id(n) for n in needles} | {id(e) for e in encoded} | {id(needles), id(encoded)}
    hits: dict[str, int] = {n: 0 for n in needles}
    holders: dict[str, list[str]] = {n: [] for n in needles}
    for text, container in _reachable_text(skip):
        for needle, raw in zip(needles, encoded, strict=True):
            if (needle in text) if isinstance(text, str) else (raw in text):
                hits[needle] += 1
                if len(holders[needle]) < 5:
                    holders[needle].append(_describe(container))
    objects: Counter[str] = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = getattr(cls, "__module__", "")
        if not isinstance(module, str) or not module.startswith(("app.", "sfu.")):
            continue
        name = cls.__name__
        if name in PER_CONNECTION or (
            any(f in name for f in ROOM_LIKE) and not name.endswith(SINGLETON_SUFFIXES)
        ):
            objects[f"{module}.{cls.__qualname__}"] += 1
    return {
        "found": [hits[n] > 0 for n in needles],
        "counts": [hits[n] for n in needles],
        "holders": [holders[n] for n in needles],
        "objects": dict(objects),
    }


async def memory_handler(request: web.Request) -> web.Response:
    """`POST /_test/memory` with `{"needles_b64": ["…", …]}`."""
    peer = peer_address(request)
    if peer is None or not peer.is_loopback:
        raise web.HTTPForbidden()
    body = await request.json()
    raw = body.get("needles_b64") if isinstance(body, dict) else None
    if not isinstance(raw, list) or len(raw) > MAX_NEEDLES:
        raise web.HTTPBadRequest(text="needles_b64: list of base64 strings")
    needles = [base64.b64decode(str(item)).decode("utf-8") for item in raw]
    result = search_memory(needles)
    needles.clear()
    return web.json_response(result)


def _loopback_only(request: web.Request) -> None:
    peer = peer_address(request)
    if peer is None or not peer.is_loopback:
        raise web.HTTPForbidden()


async def tap_arm_handler(request: web.Request) -> web.Response:
    """`POST /_test/tap` with `{"limit": 50, "keyframe": true}`: clear and arm."""
    _loopback_only(request)
    body = await request.json()
    limit = body.get("limit") if isinstance(body, dict) else None
    if not isinstance(limit, int) or not 0 <= limit <= MAX_TAP_PACKETS:
        raise web.HTTPBadRequest(text=f"limit: 0..{MAX_TAP_PACKETS}")
    TAP.arm(limit)
    if limit and body.get("keyframe"):
        hub = request.app[HUB_KEY]
        if hub.media is not None:
            for room in hub.store.all():
                for participant in room.participants:
                    hub.media.router.request_keyframe(room.id, participant)
    return web.json_response({"armed": limit})


async def tap_handler(request: web.Request) -> web.Response:
    """`GET /_test/tap?participant=…`: that publisher's recorded video payloads."""
    _loopback_only(request)
    got = TAP.payloads.get(request.query.get("participant", ""), [])
    return web.json_response({"video": [base64.b64encode(b).decode("ascii") for b in got]})


def add_test_hooks(app: web.Application) -> web.Application:
    """Adds the `/_test/*` routes and, once the SFU runs, the payload tap."""

    async def install_tap(app: web.Application) -> None:
        hub = app.get(HUB_KEY)
        media = hub.media if hub is not None else None
        router = getattr(media, "router", None)
        if router is not None and hasattr(router, "payload_tap"):
            router.payload_tap = TAP

    app.router.add_post("/_test/memory", memory_handler)
    app.router.add_post("/_test/tap", tap_arm_handler)
    app.router.add_get("/_test/tap", tap_handler)
    app.on_startup.append(install_tap)  # after create_app's cleanup_ctx started the SFU
    return app
