"""Forwarding without decoding: opaque VP8 payloads arrive byte for byte.

The publisher writes RTP packets itself (random bytes behind a valid VP8 payload
descriptor, so no encoder exists) and the subscriber records packets at its
receiver instead of decoding them. So in this test nobody in the process may create
an aiortc decoder or encoder: the process-wide count must be 0, which is a stronger
claim than the router's own (tagged) count, and does not depend on the tagging.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re

from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from codec_watch import CodecWatch
from sfu_clients import Publisher, Subscriber, wait_for, wait_media_ready

from sfu import Router
from sfu.aiortc_private import negotiated_codecs

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
FRAMES = 40
PACKETS_PER_FRAME = 3


def other_numbers(sdp: str) -> str:
    """The publisher's offer with VP8 on payload type 120 and abs-send-time on id 5,
    so that the router must map both to the subscriber's numbers (97 and 3)."""
    lines = []
    for line in sdp.split("\r\n"):
        # Only payload-type fields: a blind replace could hit the DTLS fingerprint.
        if line.startswith(("m=video", "a=rtpmap:97 ", "a=rtcp-fb:97 ", "a=fmtp:")):
            line = re.sub(r"(?<=[ :=])97\b", "120", line)
        lines.append(line)
    sdp = "\r\n".join(lines)
    return sdp.replace(f"a=extmap:3 {ABS_SEND_TIME}", f"a=extmap:5 {ABS_SEND_TIME}")


async def test_payload_bytes_arrive_unchanged_without_codecs(
    router: Router, codec_watch: CodecWatch
) -> None:
    room = "r-fwd"
    sub = Subscriber(router, room, "sub", capture_raw=True)
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await asyncio.wait_for(pub.publish([("video", "camera")], munge=other_numbers), 10)
        await pub.wait_connected()
        await asyncio.wait_for(sub.answered.wait(), 10)
        await wait_for(lambda: sub.pc.connectionState == "connected", 10)
        await wait_media_ready(router, room, "pub", "sub")
        await asyncio.sleep(0.3)  # let the down sender start

        t = pub.transceivers["camera"]
        vp8 = next(c for c in negotiated_codecs(t) if c.mimeType == "video/VP8")
        assert vp8.payloadType == 120
        ext_map = HeaderExtensionsMap()
        ext_map.configure(RTCRtpParameters(headerExtensions=t._headerExtensions))
        ssrc = t.sender._ssrc
        sent: list[bytes] = []
        seq = 1000
        for frame in range(FRAMES):
            for i in range(PACKETS_PER_FRAME):
                # VP8 payload descriptor: S bit on the first packet of a frame, PID 0.
                payload = bytes([0x10 if i == 0 else 0x00]) + os.urandom(800)
                packet = RtpPacket(
                    payload_type=120,
                    marker=int(i == PACKETS_PER_FRAME - 1),
                    sequence_number=seq,
                    timestamp=frame * 3000,
                    ssrc=ssrc,
                    payload=payload,
                )
                packet.extensions.abs_send_time = 0x123456
                packet.extensions.mid = t.mid
                await t.sender.transport._send_rtp(packet.serialize(ext_map))
                sent.append(payload)
                seq += 1
            await asyncio.sleep(0.01)
        try:
            await wait_for(lambda: len(sub.raw) >= len(sent), 5)
        except TimeoutError:
            got_payloads = [p.payload for p in sub.raw]
            missing = [i for i, p in enumerate(sent) if p not in got_payloads]
            raise AssertionError(
                f"{len(sub.raw)}/{len(sent)} arrived, missing {missing}, {router.stats.snapshot()}"
            ) from None

        got = sub.raw
        assert [p.payload for p in got] == sent
        assert {p.payload_type for p in got} == {97}
        down_ssrcs = {p.ssrc for p in got}
        assert len(down_ssrcs) == 1 and ssrc not in down_ssrcs
        seqs = [p.sequence_number for p in got]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        stamps = [p.timestamp for p in got[::PACKETS_PER_FRAME]]
        assert all((b - a) & 0xFFFFFFFF == 3000 for a, b in itertools.pairwise(stamps))
        assert [p.marker for p in got[:3]] == [0, 0, 1]
        # abs-send-time arrives under the subscriber's id; the publisher's mid does not.
        assert {p.extensions.abs_send_time for p in got} == {0x123456}
        assert {p.extensions.mid for p in got} == {None}

        stats = router.stats
        print("router stats", stats.snapshot())
        assert stats.forwarded_packets >= len(sent)
        assert codec_watch.made == []  # not even the raw-capturing clients decode
    finally:
        await sub.close()
        await pub.pc.close()


async def test_sequence_and_timestamps_continue_across_a_publisher_restart(
    router: Router,
) -> None:
    """The publisher restarts its stream (new SSRC, sequence numbers and timestamp base):
    the subscriber must still see one stream without jumps."""
    room = "r-restart"
    sub = Subscriber(router, room, "sub", capture_raw=True)
    sub.join()
    pub = Publisher(router, room, "pub")
    router.add_participant(room, "pub", _ignore)
    try:
        await asyncio.wait_for(pub.publish([("video", "camera")]), 10)
        await pub.wait_connected()
        await asyncio.wait_for(sub.answered.wait(), 10)
        await wait_for(lambda: sub.pc.connectionState == "connected", 10)
        await wait_media_ready(router, room, "pub", "sub")
        await asyncio.sleep(0.3)
        t = pub.transceivers["camera"]
        ext_map = HeaderExtensionsMap()
        ext_map.configure(RTCRtpParameters(headerExtensions=t._headerExtensions))
        pt = negotiated_codecs(t)[0].payloadType

        async def send(ssrc: int, seq: int, ts: int, frames: int) -> None:
            for _frame in range(frames):
                packet = RtpPacket(
                    payload_type=pt,
                    marker=1,
                    sequence_number=seq & 0xFFFF,
                    timestamp=ts & 0xFFFFFFFF,
                    ssrc=ssrc,
                    payload=b"\x10" + os.urandom(200),
                )
                await t.sender.transport._send_rtp(packet.serialize(ext_map))
                seq += 1
                ts += 3000
                await asyncio.sleep(0.033)

        await send(0x1111, 65530, 0xFFFFF000, 20)  # wraps both counters
        await send(0x2222, 400, 77, 20)  # restart: everything new
        await wait_for(lambda: len(sub.raw) >= 40, 5)
        got = sub.raw
        assert len({p.ssrc for p in got}) == 1
        seqs = [p.sequence_number for p in got]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(got)]
        # Every step is forward; the one at the restart follows the wall clock (~33 ms).
        assert all(0 < step < 90000 for step in steps), steps
        assert steps[19] > 1000
    finally:
        await sub.close()
        await pub.pc.close()


async def _ignore(sdp: str, tracks: object) -> None:
    return None
