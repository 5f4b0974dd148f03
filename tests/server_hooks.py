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
from typing import Any

from aiohttp import web
from memory_probe import search_memory
from sfu_worker_hooks import MEMORY_METHOD

from app.security import peer_address
from app.server import HUB_KEY

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
    result["workers"] = await _search_workers(request.app, [str(item) for item in raw])
    return web.json_response(result)


async def _search_workers(app: web.Application, needles_b64: list[str]) -> list[dict[str, Any]]:
    """The same search in every SFU worker process (`[media] workers > 1`), one result
    per worker; empty when the SFU runs inside the server process. The workers answer
    because the harness started them through tests/sfu_worker_hooks.py."""
    from sfu.pool import WorkerPool

    hub = app.get(HUB_KEY)
    pool = getattr(hub.media, "router", None) if hub is not None else None
    if not isinstance(pool, WorkerPool):
        return []
    results: list[dict[str, Any]] = []
    for worker in pool._workers:
        result: dict[str, Any] = await pool._request(worker, MEMORY_METHOD, needles_b64)
        results.append(result)
    return results


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
