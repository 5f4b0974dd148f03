"""Real media through the SFU: VP8 video and an Opus tone, decoded by two subscribers."""

from __future__ import annotations

import asyncio
import time

from codec_watch import CodecWatch
from sfu_clients import (
    ROUTER_PORTS,
    MovingVideoTrack,
    Publisher,
    Subscriber,
    ToneTrack,
    tone_ratio,
    wait_for,
)

from sfu import Router
from sfu.aiortc_private import negotiated_codecs


async def test_two_subscribers_decode_video_and_tone(
    router: Router, codec_watch: CodecWatch
) -> None:
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
            # Complete SDP: one host candidate, on loopback, in the router's port range.
            candidates = [
                line.split() for line in s.offer_sdps[-1].splitlines() if "a=candidate" in line
            ]
            assert {(c[4], c[7]) for c in candidates} == {("127.0.0.1", "host")}
            assert all(ROUTER_PORTS[0] <= int(c[5]) <= ROUTER_PORTS[1] for c in candidates)
            assert "a=end-of-candidates" in s.offer_sdps[-1]
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
        print("router stats", stats.snapshot(), "codecs made", len(codec_watch.made))
        assert stats.forwarded_packets > 0
        # The clients decode and encode (the watch sees codecs); the router made none.
        assert codec_watch.count("decoder") >= 4 and codec_watch.count("encoder") >= 2
        assert codec_watch.for_router() == []
    finally:
        for s in subs:
            await s.close()
        await pub.pc.close()


async def _no_offers(sdp: str, tracks: object) -> None:
    return None


async def test_sender_reports_carry_the_publishers_clock_mapping(router: Router) -> None:
    """Lip sync: every SR a subscriber receives maps RTP time to the publisher's NTP
    clock exactly as the publisher's own latest SR does, shifted by the down-track's
    timestamp offset. Same clock for audio and video → the browser can sync them.
    (An end-to-end "lag" check is too noisy here: aiortc's publisher stamps its SR with
    the send time of its last packet, which jitters with encoding load.)"""
    room = "r-sr"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _no_offers)
    try:
        await pub.publish([(ToneTrack(), "mic"), (MovingVideoTrack(), "camera")])
        await wait_for(lambda: sub.video_frames() > 5 and sub.audio_frames() > 5, 15)
        downs = list(router._rooms[room]["sub"].down.tracks.values())  # type: ignore[union-attr]
        up_history: dict[int, list[tuple[float, int, int]]] = {d.ssrc: [] for d in downs}
        down_history: dict[int, list[tuple[float, int, int]]] = {d.ssrc: [] for d in downs}
        # At least 4 s, longer (up to 12 s) on a loaded machine until 8 SRs have arrived.
        start = time.monotonic()
        while time.monotonic() - start < 12:
            arrived = sum(len(h) for h in down_history.values())
            if time.monotonic() - start >= 4 and arrived >= 8:
                break
            for d in downs:
                up_sr = d.up.sender_report if d.up else None
                if up_sr and (not up_history[d.ssrc] or up_history[d.ssrc][-1] != up_sr):
                    ntp, rtp, at = up_sr
                    up_history[d.ssrc].append((at, ntp, rtp))
                got = sub.sender_reports.get(d.ssrc)
                if got and (not down_history[d.ssrc] or down_history[d.ssrc][-1] != got):
                    down_history[d.ssrc].append(got)
            await asyncio.sleep(0.01)
        checked = 0
        for d in downs:
            rate = 48000 if d.info.kind == "audio" else 90000
            offset = d._ts_offset
            for received, ntp_d, rtp_d in down_history[d.ssrc]:
                used = [u for u in up_history[d.ssrc] if u[0] < received]
                if not used or received - used[-1][0] < 0.02:
                    continue  # no up SR yet, or too close to tell which one was used
                _, ntp_u, rtp_u = used[-1]
                expected = rtp_u + (ntp_d - ntp_u) * rate / (1 << 32) + offset
                error = ((rtp_d - int(expected) + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                assert abs(error) / rate < 0.002, (d.info.kind, error)
                checked += 1
        print("sender reports checked:", checked)
        assert checked >= 4
    finally:
        await sub.close()
        await pub.pc.close()


async def test_h264_publisher_is_forwarded_as_h264(router: Router, codec_watch: CodecWatch) -> None:
    """A publisher that offers only H.264 (as some browsers prefer) is forwarded as is."""
    room = "r-h264"
    sub = Subscriber(router, room, "sub")
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _no_offers)

    def h264_only(sdp: str) -> str:
        return _only_codec(sdp, "H264")

    try:
        await asyncio.wait_for(pub.publish([(MovingVideoTrack(), "camera")], h264_only), 10)
        t = pub.transceivers["camera"]
        assert {c.mimeType for c in negotiated_codecs(t)} == {"video/H264"}
        await wait_for(lambda: sub.video_frames() > 30, 20)
        down = sub.pc.getTransceivers()[0]
        h264_pts = {c.payloadType for c in negotiated_codecs(down) if c.name == "H264"}
        assert sub.payload_types and sub.payload_types <= h264_pts
        assert codec_watch.for_router() == []
    finally:
        await sub.close()
        await pub.pc.close()


def _only_codec(sdp: str, name: str) -> str:
    """The offer with the video m-line reduced to one codec family (no RTX)."""
    lines = sdp.split("\r\n")
    keep: set[str] = set()
    for line in lines:
        if line.startswith("a=rtpmap:") and f" {name}/" in line:
            keep.add(line.split()[0].split(":")[1])
    out = []
    in_video = False
    for line in lines:
        if line.startswith("m="):
            in_video = line.startswith("m=video")
            if in_video:
                head = line.split()[:3]
                line = " ".join(head + [pt for pt in line.split()[3:] if pt in keep])
        elif (
            in_video
            and line.split(":", 1)[0] in ("a=rtpmap", "a=rtcp-fb", "a=fmtp")
            and line.split()[0].split(":")[1] not in keep
        ):
            continue
        out.append(line)
    return "\r\n".join(out)
