"""What the SFU forwards, read through the server's payload tap (tests/server_hooks.py).

The server must run with the test hooks (`start_server(..., hooks=True)`). `arm_tap`
starts recording the next forwarded video RTP payloads of every publisher (and asks for
keyframes); `tapped` returns one publisher's payloads; `frames_of` depacketises VP8, and
`decode` shows whether a real VP8 decoder gets pictures out of them. Used by the E2EE
tests (tests/e2ee/test_e2ee_server_tap.py) and the Firefox tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from typing import Any

import av
from aiortc.codecs.vpx import VpxPayloadDescriptor

HOOKS: dict[str, Any] = {"hooks": True}
"""start_server arguments for a server with the test hooks (tests/server_hooks.py)."""
MAGIC = b"KRE\x01"
"""The last bytes of every frame the E2EE engine encrypted (app/static/e2ee/frame.js)."""
TAP_PACKETS = 60


def _http(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


async def arm_tap(server: Any) -> None:
    """Clears the tap, records the next TAP_PACKETS packets, asks for keyframes."""
    await asyncio.to_thread(
        _http, f"{server.url}/_test/tap", {"limit": TAP_PACKETS, "keyframe": True}
    )


async def tapped(server: Any, participant: str, timeout: float = 15) -> list[bytes]:
    """The recorded payloads of participant, once TAP_PACKETS have been recorded."""
    deadline = time.monotonic() + timeout
    got: list[bytes] = []
    while time.monotonic() < deadline:
        answer = await asyncio.to_thread(_http, f"{server.url}/_test/tap?participant={participant}")
        got = [base64.b64decode(b) for b in answer["video"]]
        if len(got) >= TAP_PACKETS:
            return got
        await asyncio.sleep(0.25)
    raise AssertionError(f"the tap saw only {len(got)} video packets of {participant}")


def frames_of(payloads: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Complete VP8 frames (depacketised) with the last packet's raw payload; packets
    before the first frame start and an unfinished last frame are left out."""
    frames: list[tuple[bytes, bytes]] = []
    current: list[bytes] | None = None
    last = b""
    for payload in payloads:
        descriptor, data = VpxPayloadDescriptor.parse(payload)
        if descriptor.partition_start and descriptor.partition_id == 0:
            if current is not None:
                frames.append((b"".join(current), last))
            current = []
        if current is not None:
            current.append(data)
            last = payload
    return frames


def decode(frames: list[bytes], codec: str = "libvpx") -> tuple[int, int]:
    """(pictures, errors) of a fresh VP8 decoder fed the frames in order."""
    ctx: Any = av.CodecContext.create(codec, "r")
    pictures = errors = 0
    for frame in frames:
        try:
            pictures += len(ctx.decode(av.Packet(frame)))
        except av.error.FFmpegError:
            errors += 1
    return pictures, errors


def is_keyframe(frame: bytes) -> bool:
    return len(frame) >= 10 and frame[0] & 0x01 == 0 and frame[3:6] == b"\x9d\x01\x2a"
