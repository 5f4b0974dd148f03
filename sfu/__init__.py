"""Kreis SFU: forwards RTP between participants without decoding or encoding.

Public API (the server in app/ uses only this)::

    from sfu import Router, MediaSettings, TrackInfo, DownTrackInfo, BadSdp

    router = Router(MediaSettings(bind_address=..., advertised_address=...,
                                  port_min=40000, port_max=40999))
    await router.start()
    router.add_participant(room, participant, send_down_offer)
        # send_down_offer(sdp, [DownTrackInfo]) is awaited whenever the set of
        # tracks the participant should receive changes (complete SDP, server offers)
    answer = await router.got_up_offer(room, participant, sdp, [TrackInfo(...)])
        # raises BadSdp (code "bad_sdp")
    await router.got_down_answer(room, participant, sdp)    # raises BadSdp
    router.set_forwarding(room, participant, "mic", False)  # mute: stop forwarding
    router.set_receive(room, participant, frozenset({"audio"}))  # audio only
    router.request_keyframe(room, participant)              # throttled PLI upstream
    await router.remove_participant(room, participant)
    await router.stop()                                     # closes every connection
    router.stats                                            # sfu.stats.Stats counters

room and participant are opaque ids; the SFU knows no names, lobbies or passwords.
A participant has an up connection (it offers) and a down connection (the SFU
offers); see docs/protocol.md. Beyond the shape agreed with app/:

- got_up_offer and got_down_answer raise UnknownParticipant (an SfuError, code
  "unknown_participant") for ids never added; set_forwarding and request_keyframe
  ignore them. A mute (set_forwarding False) also holds for tracks published later;
  PortRangeExhausted (code "no_media_port") when every UDP port of the range is taken.
- A new up offer on the same connection renegotiates it (e.g. camera switched on);
  the tracks list is authoritative: mids missing from it stop being forwarded.
- Down offers are serialised per participant; a change during an outstanding offer
  is offered after the answer (or after ANSWER_TIMEOUT = 20 s without one).
- Codecs: Opus, VP8 and H.264 only, no RTX (retransmissions reuse the SSRC).
- MediaSettings.test_drop_rate / test_down_drop_rate simulate loss (tests only).
- Each subscriber's own link decides what it gets (downlink): video to a subscriber
  whose link cannot carry it pauses (audio keeps flowing) and resumes when a probe
  shows the link recovered; publishers get the best subscriber's REMB, so a weak
  link never lowers what everyone else receives.
- No decoder or encoder is ever made for the router's connections; the tests prove it
  by wrapping aiortc's codec factories (tests/sfu/codec_watch.py).

Modules: conn (vocabulary), settings, router (this API), peer (up/down peer
connections), sdpcheck (what an up offer or down answer must be; BadSdp before aiortc
sees it), uptrack, downtrack (rewrite, packet cache, sender reports), downlink
(per-subscriber pause/probe/resume), keyframe (where decoding can start; padding),
rtpheader, rtcp, stats, errors, aiortc_private (every use of aiortc/aioice internals);
pool, worker and channel run the same API in worker processes (a dead worker is
restarted and its participants are asked to offer again).
"""

from __future__ import annotations

from sfu.conn import DownTrackInfo, TrackInfo
from sfu.errors import BadSdp, PortRangeExhausted, SfuError, UnknownParticipant
from sfu.router import Router
from sfu.settings import MediaSettings
from sfu.stats import Stats

__all__ = [
    "BadSdp",
    "DownTrackInfo",
    "MediaSettings",
    "PortRangeExhausted",
    "Router",
    "SfuError",
    "Stats",
    "TrackInfo",
    "UnknownParticipant",
]
