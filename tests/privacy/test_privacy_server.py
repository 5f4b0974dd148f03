"""The privacy promises, checked against a real `kreis serve` process on loopback.

- Trace audit: a whole meeting with distinctive strings (slug, guest names, chat, room
  password, client addresses that only ever appear in an X-Forwarded-For header); after
  the room ends, no file the server could have written holds any of them, its memory
  holds no room object and none of the meeting's strings, and the log has the one
  accountability line (group and time, no room).
- `/metrics` counts match a scenario with known numbers; token and loopback rules.
- Security headers on every kind of response.
- SIGTERM: participants are told `server_restart` before the process goes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.client import KreisClient
from app.security import CONTENT_SECURITY_POLICY

SLUG = "zz-spurlos-7q3x"
GUEST = "Zwetschgenbaum-Quux"
WAITING_GUEST = "Quittenmus-Xylo"
CHAT = "Marzipan-Geheimnis-91"
LOBBY_CHAT = "Holunder-Flüstern-38"
ROOM_PASSWORD = "Pflaumen-Pforte-55"
GUEST_IP = "203.0.113.77"
WAITING_IP = "2001:db8:77::99"
MEETING_STRINGS = [SLUG, GUEST, WAITING_GUEST, CHAT, LOBBY_CHAT, ROOM_PASSWORD]
ADDRESSES = [GUEST_IP, WAITING_IP]
ROOT = Path(__file__).resolve().parents[2]


async def _leader(server: Any) -> KreisClient:
    leader = KreisClient(server.url, kind="browser", lang="de")
    await leader.connect()
    await leader.request(
        {"type": "login", "group": server.group, "password": server.password}, "login_ok"
    )
    return leader


async def _guest(server: Any, address: str) -> KreisClient:
    guest = KreisClient(server.url, kind="browser", headers={"X-Forwarded-For": address})
    await guest.connect()
    return guest


async def _until(client: KreisClient, kind: str, check: Any, timeout: float = 10) -> dict[str, Any]:
    """The first message of `kind` (queued or future) for which `check(msg)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        msg = await client.expect(kind, timeout=max(0.1, remaining))
        if check(msg):
            return msg


async def _metrics(server: Any, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + "/metrics", headers=headers or {}) as resp,
    ):
        return resp.status, await resp.text()


def _values(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def _memory(server: Any, needles: list[str]) -> dict[str, Any]:
    body = {"needles_b64": [base64.b64encode(n.encode()).decode() for n in needles]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url + "/_test/memory", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


def _traces(memory: dict[str, Any]) -> bool:
    """Whether a `/_test/memory` answer found anything, in the server or a worker."""
    return any(any(m["found"]) or bool(m["objects"]) for m in [memory, *memory.get("workers", [])])


def _files_containing(base: Path, needles: list[str]) -> dict[str, list[str]]:
    """needle → files under `base` whose bytes contain it (UTF-8, and as JSON escapes)."""
    hits: dict[str, list[str]] = {n: [] for n in needles}
    for path in base.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for needle in needles:
            forms = {needle.encode(), json.dumps(needle).strip('"').encode()}
            if any(form in data for form in forms):
                hits[needle].append(str(path.relative_to(base)))
    return {n: files for n, files in hits.items() if files}


@pytest.mark.parametrize("audit_server", [1, 2], indirect=True, ids=["sfu-inline", "sfu-workers"])
async def test_meeting_leaves_no_trace(audit_server: Any) -> None:
    server = audit_server
    ids: list[str] = []  # the participants' ids: what the SFU (and its workers) knew
    base = server.config_path.parent
    leader = await _leader(server)
    guest = await _guest(server, GUEST_IP)
    waiting = await _guest(server, WAITING_IP)
    try:
        created = await leader.request(
            {"type": "create_room", "slug": SLUG, "lobby": True}, "room_created"
        )
        assert created["slug"] == SLUG
        await leader.request(
            {"type": "set_password", "room": SLUG, "password": ROOM_PASSWORD}, "room_state"
        )
        ids.append(
            (await leader.request({"type": "join", "room": SLUG, "name": "Leitung"}, "joined"))[
                "id"
            ]
        )

        await guest.request(
            {"type": "join", "room": SLUG, "name": GUEST, "password": ROOM_PASSWORD},
            "lobby_status",
        )
        queue = await _until(
            leader, "lobby_queue", lambda m: any(e["name"] == GUEST for e in m["entrants"])
        )
        [entrant] = [e for e in queue["entrants"] if e["name"] == GUEST]
        await leader.send({"type": "admit", "room": SLUG, "id": entrant["id"]})
        ids.append((await guest.expect("joined"))["id"])
        await guest.send({"type": "media_state", "mic": True, "camera": False, "screen": False})

        await waiting.request(
            {"type": "join", "room": SLUG, "name": WAITING_GUEST, "password": ROOM_PASSWORD},
            "lobby_status",
        )
        await waiting.send({"type": "chat", "text": LOBBY_CHAT})
        await _until(leader, "chat", lambda m: m["text"] == LOBBY_CHAT)
        await guest.send({"type": "chat", "text": CHAT})
        await _until(leader, "chat", lambda m: m["text"] == CHAT)
        await _until(
            leader,
            "participants",
            lambda m: any(p["name"] == GUEST and p["mic"] for p in m["participants"]),
        )

        # /metrics while the meeting runs: 1 room, 2 browsers (leader, guest), 1 waiting.
        auth = {"Authorization": f"Bearer {server.metrics_token}"}
        assert (await _metrics(server))[0] == 401
        assert (await _metrics(server, {"Authorization": "Bearer falsch"}))[0] == 401
        forwarded = {**auth, "X-Forwarded-For": GUEST_IP}
        assert (await _metrics(server, forwarded))[0] == 403
        status, text = await _metrics(server, auth)
        assert status == 200, text
        values = _values(text)
        assert values["kreis_rooms"] == 1, text
        assert values['kreis_participants{kind="browser"}'] == 2, text
        assert values['kreis_participants{kind="phone"}'] == 0, text
        assert values['kreis_participants{kind="console"}'] == 0, text
        assert values["kreis_lobby_waiting"] == 1, text
        assert values["kreis_mic_on"] == 1, text
        assert values["kreis_camera_on"] == 0 and values["kreis_screen_shares"] == 0, text
        for needle in [*MEETING_STRINGS, *ADDRESSES, server.group]:
            assert needle not in text

        # A meeting lasts longer than one tick of any background loop (the empty-room
        # reaper runs every second): give them the chance to touch the room.
        await asyncio.sleep(2)

        # Positive control: while the meeting runs the probe does see it.
        # (Lobby chat is relayed, not kept; the room password is kept only as a hash.)
        live = await _memory(server, [SLUG, GUEST, WAITING_GUEST, CHAT])
        assert all(live["found"]), live
        assert any("Room" in name for name in live["objects"]), live
        # With SFU workers, the one holding the room knows its participants (by id
        # only: no worker ever holds a name, the slug or chat).
        live = await _memory(server, [*MEETING_STRINGS, *ids])
        assert len(live["workers"]) == (server.workers if server.workers > 1 else 0), live
        holding = [w for w in live["workers"] if any(w["found"][len(MEETING_STRINGS) :])]
        if server.workers > 1:
            [worker] = holding
            assert all(worker["found"][len(MEETING_STRINGS) :]), worker
            assert any("Participant" in name for name in worker["objects"]), worker
        for worker in live["workers"]:
            assert not any(worker["found"][: len(MEETING_STRINGS)]), worker

        await leader.send({"type": "end_room", "room": SLUG})
        await guest.expect("room_ended")
        await _until(waiting, "lobby_status", lambda m: m["state"] == "ended")
    finally:
        for client in (guest, waiting, leader):
            await client.close()

    # The room is gone from the process and from every SFU worker: no room-like
    # object, no meeting string, no participant id.
    auth = {"Authorization": f"Bearer {server.metrics_token}"}
    assert _values((await _metrics(server, auth))[1])["kreis_rooms"] == 0
    needles = [*MEETING_STRINGS, *ids]
    memory: dict[str, Any] = {}
    for _ in range(3):  # closing sockets and tasks settles within a moment
        await asyncio.sleep(1)
        memory = await _memory(server, needles)
        if not _traces(memory):
            break
    leftovers = [n for n, found in zip(needles, memory["found"], strict=True) if found]
    assert not leftovers, f"still in server memory after the room ended: {leftovers} {memory}"
    assert not memory["objects"], f"room objects still alive: {memory['objects']}"
    for k, worker in enumerate(memory["workers"]):
        leftovers = [n for n, found in zip(needles, worker["found"], strict=True) if found]
        assert not leftovers, f"still in SFU worker {k} after the room ended: {leftovers} {worker}"
        assert not worker["objects"], f"room objects alive in SFU worker {k}: {worker['objects']}"

    server.stop()  # flush everything the process might write on its way out
    assert server.process.returncode is not None

    # Not one file it could have written names the meeting or a participant's address.
    assert _files_containing(base, [*MEETING_STRINGS, *ADDRESSES]) == {}
    # The logs are JSON lines, private, and hold the one accountability line.
    log_files = sorted(server.log_dir.glob("kreis-*.log"))
    assert log_files, "the server wrote no log file into [logging] dir"
    assert oct(server.log_dir.stat().st_mode & 0o777) == oct(0o700)
    lines = []
    for path in log_files:
        assert oct(path.stat().st_mode & 0o777) == oct(0o600), path
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    started = [line for line in lines if line.get("event") == "room_started"]
    assert len(started) == 1, started
    assert started[0]["group"] == server.group and started[0]["ts"]


async def test_metrics_empty_server(audit_server: Any) -> None:
    auth = {"Authorization": f"Bearer {audit_server.metrics_token}"}
    status, text = await _metrics(audit_server, auth)
    assert status == 200
    values = _values(text)
    assert values["kreis_rooms"] == 0 and values["kreis_lobby_waiting"] == 0
    assert "kreis_forwarded_packets_total" in values
    assert not any(name.startswith(("process_", "python_")) for name in values)


def _static_path() -> str:
    static = ROOT / "app" / "static"
    files = sorted(p for p in static.rglob("*") if p.is_file())
    assert files, "app/static is empty"
    return "/static/" + files[0].relative_to(static).as_posix()


async def test_security_headers_everywhere(kreis_server: Any) -> None:
    paths = [
        ("/", {200}, True),
        (f"/{SLUG}", {200}, True),
        (_static_path(), {200}, False),
        ("/healthz", {200}, False),
        ("/static/does-not-exist.js", {404}, False),
        ("/gibt/es/nicht", {404}, False),
        ("/metrics", {200, 401, 403}, False),
    ]
    async with aiohttp.ClientSession() as session:
        for path, statuses, html in paths:
            async with session.get(kreis_server.url + path) as resp:
                assert resp.status in statuses, path
                headers = resp.headers
                assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, path
                assert headers.get("X-Frame-Options") == "DENY", path
                assert headers.get("Referrer-Policy") == "no-referrer", path
                assert headers.get("X-Content-Type-Options") == "nosniff", path
                assert "microphone=(self)" in headers.get("Permissions-Policy", ""), path
                assert "Strict-Transport-Security" not in headers, path  # plain-HTTP test server
                assert "aiohttp" not in headers.get("Server", "").lower(), path
                if html:
                    assert resp.content_type == "text/html", path
                    assert headers.get("Cache-Control") == "no-store", path
        async with session.ws_connect(kreis_server.ws_url) as sock:
            assert sock._response.headers.get("X-Frame-Options") == "DENY"


async def test_sigterm_tells_participants_to_reconnect(kreis_server: Any) -> None:
    leader = await _leader(kreis_server)
    guest = await _guest(kreis_server, GUEST_IP)
    try:
        await leader.request({"type": "create_room", "slug": SLUG, "lobby": False}, "room_created")
        await guest.request({"type": "join", "room": SLUG, "name": GUEST}, "joined")
        kreis_server.process.send_signal(signal.SIGTERM)
        for client in (guest, leader):
            restart = await client.expect("server_restart", timeout=10)
            assert isinstance(restart.get("retry_after"), int)
        await asyncio.wait_for(guest.closed.wait(), 10)
    finally:
        await guest.close()
        await leader.close()
    returncode = await asyncio.get_running_loop().run_in_executor(
        None, lambda: kreis_server.process.wait(timeout=15)
    )
    assert returncode in (0, -signal.SIGTERM), returncode


async def test_forged_loopback_claim_does_not_open_metrics(audit_server: Any) -> None:
    """A client that claims to be loopback in a header does not become loopback."""
    auth = {"Authorization": f"Bearer {audit_server.metrics_token}"}
    forged = {**auth, "X-Forwarded-For": "127.0.0.1, 198.51.100.1"}
    status, _ = await _metrics(audit_server, forged)
    assert status == 403
