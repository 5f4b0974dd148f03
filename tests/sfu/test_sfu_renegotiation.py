"""Renegotiation: late joiners get existing tracks, leavers' tracks are dropped."""

from __future__ import annotations

import asyncio

from codec_watch import CodecWatch
from sfu_clients import MovingVideoTrack, Publisher, Subscriber, ToneTrack, wait_for

from sfu import Router


def summary(sub: Subscriber) -> list[tuple[str, str, str]]:
    return sorted((t.participant, t.source, t.kind) for t in sub.offers[-1])


async def test_late_joiner_and_leaver(router: Router) -> None:
    room = "r-reneg"
    a_sub, b_sub = Subscriber(router, room, "a"), Subscriber(router, room, "b")
    a_sub.join()
    b_sub.join()
    a_pub, b_pub = Publisher(router, room, "a"), Publisher(router, room, "b")
    c_sub: Subscriber | None = None
    try:
        await a_pub.publish([(ToneTrack(), "mic"), (MovingVideoTrack(), "camera")])
        await b_pub.publish([(ToneTrack(880), "mic")])
        await wait_for(lambda: b_sub.video_frames() > 20, 15)
        await wait_for(lambda: a_sub.audio_frames() > 20, 10)

        # C joins later and receives what is already there.
        c_sub = Subscriber(router, room, "c")
        c_sub.join()
        await wait_for(lambda: c_sub.video_frames() > 20 and c_sub.audio_frames() > 40, 15)
        assert summary(c_sub) == [
            ("a", "camera", "video"),
            ("a", "mic", "audio"),
            ("b", "mic", "audio"),
        ]
        assert router.stats.up_tracks == 3 and router.stats.down_tracks == 6
        assert router.stats.participants == 3

        # A leaves: B and C get offers without A's tracks.
        offers_b, offers_c = len(b_sub.offers), len(c_sub.offers)
        await router.remove_participant(room, "a")
        await wait_for(lambda: len(b_sub.offers) > offers_b and len(c_sub.offers) > offers_c, 5)
        await wait_for(lambda: not router._rooms[room]["b"].offer_outstanding, 5)
        await wait_for(lambda: not router._rooms[room]["c"].offer_outstanding, 5)
        assert summary(b_sub) == []
        assert summary(c_sub) == [("b", "mic", "audio")]
        assert router.stats.up_tracks == 1 and router.stats.down_tracks == 1
        # C still hears B after the renegotiation.
        heard = c_sub.audio_frames()
        await wait_for(lambda: c_sub.audio_frames() > heard + 25, 5)
        assert b_sub.overlapping_offers == 0 and c_sub.overlapping_offers == 0
        print("offers b/c:", len(b_sub.offers), len(c_sub.offers), router.stats.snapshot())
    finally:
        for s in (a_sub, b_sub, c_sub):
            if s is not None:
                await s.close()
        await a_pub.pc.close()
        await b_pub.pc.close()


async def test_changes_during_an_outstanding_offer_wait_for_the_answer(router: Router) -> None:
    room = "r-serial"
    slow = Subscriber(router, room, "slow", answer_delay=0.6)
    slow.join()
    pubs = [Publisher(router, room, f"p{i}") for i in range(3)]
    for p in pubs:
        router.add_participant(room, p.id, _ignore)
    try:
        for p in pubs:
            await p.publish([(ToneTrack(), "mic")])
            await asyncio.sleep(0.1)
        await wait_for(lambda: len(slow.offers[-1]) == 3 if slow.offers else False, 10)
        await wait_for(lambda: not router._rooms[room]["slow"].offer_outstanding, 5)
        assert slow.overlapping_offers == 0
        assert 2 <= len(slow.offers) <= 3
        await wait_for(lambda: len(slow.frames) == 3 and min(slow.frames.values()) > 10, 10)
    finally:
        await slow.close()
        for p in pubs:
            await p.pc.close()


async def test_publisher_adds_a_track_by_renegotiating(
    router: Router, codec_watch: CodecWatch
) -> None:
    """Camera switched on later: a second up offer on the same connection."""
    room = "r-upreneg"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await pub.publish([(ToneTrack(), "mic")])
        await wait_for(lambda: sub.audio_frames() > 20, 10)
        up_pc = router._rooms[room]["pub"].up
        await pub.publish([(MovingVideoTrack(), "camera")])
        assert router._rooms[room]["pub"].up is up_pc  # same connection, renegotiated
        await wait_for(lambda: sub.video_frames() > 20, 15)
        assert summary(sub) == [("pub", "camera", "video"), ("pub", "mic", "audio")]
        heard = sub.audio_frames()
        await wait_for(lambda: sub.audio_frames() > heard + 20, 5)
        assert codec_watch.for_router() == []
    finally:
        await sub.close()
        await pub.pc.close()


async def test_publisher_switches_camera_track_without_new_down_mline(router: Router) -> None:
    """A new camera track on a new m-line (e.g. another device): subscribers keep their
    down transceiver, now fed by the new up-track, without a renegotiation, and keep
    decoding (sequence numbers and timestamps continue across the switch)."""
    room = "r-switch"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await pub.publish([(MovingVideoTrack(), "camera")])
        await wait_for(lambda: sub.video_frames() > 20, 15)
        mids = [t.mid for t in sub.offers[-1]]
        old = pub.transceivers["camera"]
        old.direction = "inactive"
        offers = len(sub.offers)
        old_up = router._rooms[room]["pub"].up.tracks[str(old.mid)]  # type: ignore[union-attr]
        await pub.publish([(MovingVideoTrack(160, 120), "camera")])
        new_up = router._rooms[room]["pub"].up.tracks[str(pub.transceivers["camera"].mid)]  # type: ignore[union-attr]
        assert new_up is not old_up
        await wait_for(lambda: bool(new_up.downs), 5)
        seen = sub.video_frames()
        await wait_for(lambda: sub.video_frames() > seen + 20, 10)
        assert len(sub.offers) == offers and [t.mid for t in sub.offers[-1]] == mids
        assert len(sub.pc.getTransceivers()) == 1
        assert router.stats.up_tracks == 1 and router.stats.down_tracks == 1
    finally:
        await sub.close()
        await pub.pc.close()


async def _ignore(sdp: str, tracks: object) -> None:
    return None
