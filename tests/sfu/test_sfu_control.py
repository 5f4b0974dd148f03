"""Mute (set_forwarding), keyframe requests, and broken SDP that must not hurt the router."""

from __future__ import annotations

import asyncio
import time

import pytest
from codec_watch import CodecWatch
from sfu_clients import MovingVideoTrack, Publisher, Subscriber, ToneTrack, wait_for

from sfu import BadSdp, Router, TrackInfo, UnknownParticipant


async def test_set_forwarding_stops_and_resumes(router: Router) -> None:
    room = "r-mute"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await pub.publish([(ToneTrack(), "mic"), (MovingVideoTrack(), "camera")])
        await wait_for(lambda: sub.video_frames() > 20 and sub.audio_frames() > 20, 15)

        router.set_forwarding(room, "pub", "mic", False)
        router.set_forwarding(room, "pub", "camera", False)
        await asyncio.sleep(0.3)  # packets already in flight
        stopped_at = router.stats.forwarded_packets
        frames_at = sub.video_frames()
        received_at = router.stats.received_packets
        await asyncio.sleep(1.0)
        assert router.stats.forwarded_packets == stopped_at
        assert router.stats.received_packets > received_at + 40  # the publisher kept sending
        assert sub.video_frames() <= frames_at + 2

        plis = router.stats.plis_sent_upstream
        router.set_forwarding(room, "pub", "camera", True)
        await wait_for(lambda: sub.video_frames() > frames_at + 20, 5)
        assert router.stats.forwarded_packets > stopped_at
        assert router.stats.plis_sent_upstream > plis  # resuming asks for a keyframe
        audio_at = sub.audio_frames()
        router.set_forwarding(room, "pub", "mic", True)
        await wait_for(lambda: sub.audio_frames() > audio_at + 20, 5)
        print("mute test stats", router.stats.snapshot())
    finally:
        await sub.close()
        await pub.pc.close()


async def test_mute_before_publishing_holds_for_new_tracks(router: Router) -> None:
    room = "r-premute"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    router.set_forwarding(room, "nobody", "mic", False)  # unknown ids are ignored
    router.request_keyframe(room, "nobody")
    router.set_forwarding(room, "pub", "camera", False)
    try:
        await pub.publish([(ToneTrack(), "mic"), (MovingVideoTrack(), "camera")])
        await wait_for(lambda: sub.audio_frames() > 30, 15)
        assert sub.video_frames() == 0
        router.set_forwarding(room, "pub", "camera", True)
        await wait_for(lambda: sub.video_frames() > 10, 10)
    finally:
        await sub.close()
        await pub.pc.close()


async def test_keyframe_requests_are_throttled(router: Router) -> None:
    room = "r-kf"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await pub.publish([(MovingVideoTrack(), "camera")])
        await wait_for(lambda: sub.video_frames() > 10, 15)
        before = router.stats.plis_sent_upstream
        requested = router.stats.keyframes_requested
        started = time.monotonic()
        for _ in range(75):  # one request every 20 ms for about 1.5 s
            router.request_keyframe(room, "pub")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.55)  # the last throttled request goes out
        elapsed = time.monotonic() - started
        sent = router.stats.plis_sent_upstream - before
        print("keyframe requests", router.stats.keyframes_requested - requested, "PLIs", sent)
        # At most one PLI per 500 ms (the window may have opened just before), never none.
        assert 3 <= sent <= int(elapsed / 0.5) + 1
    finally:
        await sub.close()
        await pub.pc.close()


async def test_bad_sdp_is_refused_and_router_stays_usable(
    router: Router, codec_watch: CodecWatch
) -> None:
    room = "r-bad"
    router.add_participant(room, "x", _ignore)
    with pytest.raises(BadSdp):
        await router.got_up_offer(room, "x", "this is not sdp", [])
    with pytest.raises(BadSdp):
        await router.got_up_offer(room, "x", "v=0\r\nm=video 9 FOO 1\r\n", [])
    with pytest.raises(BadSdp):  # no down offer was ever sent
        await router.got_down_answer(room, "x", "v=0\r\n")
    with pytest.raises(UnknownParticipant):
        await router.got_up_offer(room, "nobody", "v=0\r\n", [])

    # A real offer whose announced track does not exist in it.
    pub = Publisher(router, room, "x")
    pc = pub.pc
    pc.addTransceiver(ToneTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    with pytest.raises(BadSdp):
        await router.got_up_offer(
            room, "x", pc.localDescription.sdp, [TrackInfo(mid="7", kind="video", source="camera")]
        )
    await pc.close()

    # A subscriber that answers garbage first, then properly.
    sub = Subscriber(router, room, "sub")
    offers: list[str] = []

    async def keep_offer(sdp: str, tracks: object) -> None:
        offers.append(sdp)

    router.add_participant(room, "sub", keep_offer)
    good = Publisher(router, room, "good")
    router.add_participant(room, "good", _ignore)
    try:
        await good.publish([(MovingVideoTrack(), "camera")])
        await wait_for(lambda: bool(offers), 5)
        with pytest.raises(BadSdp):
            await router.got_down_answer(room, "sub", "v=0\r\nnonsense\r\n")
        # The router re-offers on the next change; a fresh subscriber works meanwhile.
        late = Subscriber(router, room, "late")
        late.join()
        await wait_for(lambda: late.video_frames() > 10, 15)
        await late.close()
        # The next change re-offers to the subscriber, which now answers properly.
        sub.join()
        again = Publisher(router, room, "again")
        router.add_participant(room, "again", _ignore)
        await again.publish([(ToneTrack(), "mic")])
        await wait_for(lambda: sub.video_frames() > 10 and sub.audio_frames() > 10, 15)
        assert codec_watch.for_router() == []
    finally:
        await sub.close()
        await good.pc.close()
        if "again" in locals():
            await again.pc.close()


async def _ignore(sdp: str, tracks: object) -> None:
    return None
