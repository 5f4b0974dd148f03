"""Real media through the SFU: VP8 video and an Opus tone, decoded by two subscribers."""

from __future__ import annotations

import asyncio

from sfu_clients import MovingVideoTrack, Publisher, Subscriber, ToneTrack, tone_ratio, wait_for

from sfu import Router
from sfu.aiortc_private import process_codec_counts


async def test_two_subscribers_decode_video_and_tone(router: Router) -> None:
    room = "r-media"
    subs = [Subscriber(router, room, f"s{i}") for i in range(2)]
    for s in subs:
        s.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _no_offers)
    try:
        await asyncio.wait_for(
            pub.publish([(ToneTrack(), "mic"), (MovingVideoTrack(), "camera")]), 10
        )
        await wait_for(lambda: all(s.video_frames() > 60 for s in subs), 20)
        await wait_for(lambda: all(s.audio_frames() > 100 for s in subs), 10)
        for s in subs:
            assert [(t.kind, t.source, t.participant) for t in s.offers[-1]] == [
                ("audio", "mic", "pub"),
                ("video", "camera", "pub"),
            ]
            peak, share = tone_ratio(s.audio[-60:])
            print(
                f"{s.id}: video frames {s.video_frames()}, audio frames "
                f"{s.audio_frames()}, tone peak {peak:.0f} Hz, band share {share:.2f}"
            )
            assert abs(peak - 1000) < 30
            assert share > 0.5
        stats = router.stats
        print("router stats", stats.snapshot(), "process codecs", process_codec_counts())
        assert stats.forwarded_packets > 0
        assert stats.decoders_created == 0
        assert stats.encoders_created == 0
    finally:
        for s in subs:
            await s.close()
        await pub.pc.close()


async def _no_offers(sdp: str, tracks: object) -> None:
    return None
