"""Loss repair: 8 % of the publisher's packets are dropped on arrival at the SFU,
and 5 % of the packets to subscribers are not sent the first time.

The SFU NACKs the publisher for the inbound gaps (aiortc's receiver would have, but it
never sees the packets), answers subscribers' NACKs from the down-track cache (that is
what repairs the outbound loss), and forwards their PLIs (throttled). Video must keep
decoding.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from codec_watch import CodecWatch
from sfu_clients import ROUTER_PORTS, MovingVideoTrack, Publisher, Subscriber, wait_for

from sfu import MediaSettings, Router

DROP_RATE = 0.08
DOWN_DROP_RATE = 0.05


@pytest.fixture
async def lossy_router() -> AsyncIterator[Router]:
    r = Router(
        MediaSettings(
            port_min=ROUTER_PORTS[0],
            port_max=ROUTER_PORTS[1],
            test_drop_rate=DROP_RATE,
            test_down_drop_rate=DOWN_DROP_RATE,
        )
    )
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_video_survives_inbound_loss(lossy_router: Router, codec_watch: CodecWatch) -> None:
    router = lossy_router
    room = "r-loss"
    subs = [Subscriber(router, room, f"s{i}") for i in range(2)]
    for s in subs:
        s.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await pub.publish([(MovingVideoTrack(), "camera")])
        await wait_for(lambda: all(s.video_frames() > 15 for s in subs), 15)
        samples = []
        for _ in range(4):
            samples.append([s.video_frames() for s in subs])
            await asyncio.sleep(1.0)
        samples.append([s.video_frames() for s in subs])
        st = router.stats
        print("frames per second-sample", samples)
        print("loss stats", st.snapshot())
        # Frames keep arriving in every one-second window, for both subscribers.
        for before, after in itertools.pairwise(samples):
            assert all(a > b + 5 for a, b in zip(after, before, strict=True)), samples
        # The inbound hook dropped its share of what publishers sent (counted apart from
        # the subscribers' drops, so a broken inbound hook cannot hide behind them).
        arrived = st.dropped_up_packets + st.received_packets
        assert DROP_RATE / 4 < st.dropped_up_packets / arrived < DROP_RATE * 2, arrived
        assert st.dropped_packets - st.dropped_up_packets > 0
        assert st.nacks_sent_upstream > 0
        assert st.nacks_answered > 0
        assert st.plis_sent_upstream > 0
        assert codec_watch.for_router() == []
        # The subscribers' bandwidth estimates reach the publisher (lowest REMB).
        await wait_for(lambda: st.rembs_sent_upstream > 0, 5)
        # The publisher gets receiver reports: its RTT estimate needs our LSR/DLSR.
        assert st.receiver_reports_sent > 0
        remote = [v for v in (await pub.pc.getStats()).values() if v.type == "remote-inbound-rtp"]
        print("publisher's view of the SFU:", remote)
        assert remote and remote[0].roundTripTime is not None
    finally:
        for s in subs:
            await s.close()
        await pub.pc.close()


async def _ignore(sdp: str, tracks: object) -> None:
    return None
