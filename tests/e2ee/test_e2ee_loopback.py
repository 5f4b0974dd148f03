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
    result: dict[str, Any] = page.evaluate("([a, b]) => kreisTest.received(a, b)", [src, dst])
    return result


def stats(page: Any, who: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("(id) => kreisTest.stats(id)", who)
    return result


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
    end = frames(page, src, dst)
    raise AssertionError(f"{dst} decoded no new video from {src} ({start} → {end})")


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
    assert {s["mimeType"] for s in video} == {"video/VP8"}
    assert {s["mimeType"] for s in audio_s} == {"audio/opus"}
    assert not bench.errors


def test_receiver_without_key_decodes_nothing_and_counts_drops(bench: Any) -> None:
    setup(bench, ["alice", "bob", "eve"], eve={"blockKeys": True})
    wait_frames_rising(bench, "alice", "bob", more=20)
    eve_before = stats(bench, "eve")
    bench.wait_for_timeout(1500)
    eve_after = stats(bench, "eve")
    assert received(bench, "alice", "eve")["video"]["framesDecoded"] == 0
    assert received(bench, "alice", "eve")["audio"]["totalAudioEnergy"] == 0
    assert eve_after["decrypted"] == 0
    assert eve_after["dropped"] > eve_before["dropped"] > 0
    # Every frame Eve received was dropped for want of a key. (`dropped` also counts her
    # own sender's frames held back at switch-on until her key is out: `noSendKey`.)
    by = eve_after["droppedBy"]
    assert by["noKey"] == eve_after["dropped"] - by["noSendKey"], by
    assert eve_after["perParticipant"]["alice"]["passedClear"] == 0


def test_clear_frames_dropped_while_sender_is_announced_on(bench: Any) -> None:
    """A server that claims "on" for a sender who sends clear gets nothing to the decoder."""
    setup(bench, ["alice", "bob"], enable=False)
    wait_frames_rising(bench, "alice", "bob", more=10)  # both off: clear frames pass
    assert stats(bench, "bob")["passedClear"] > 0
    bench.evaluate("() => kreisTest.claim('alice', 'on')")
    bench.wait_for_timeout(500)
    before = frames(bench, "alice", "bob")
    bench.wait_for_timeout(1500)
    assert frames(bench, "alice", "bob") == before
    assert stats(bench, "bob")["droppedBy"]["clear"] > 0


def test_new_key_after_leave_and_video_keeps_flowing(bench: Any) -> None:
    setup(bench, ["alice", "bob", "carol"])
    wait_frames_rising(bench, "alice", "bob", more=20)
    before = stats(bench, "alice")["keyIds"]["self"]
    assert stats(bench, "bob")["keyIds"]["alice"] == before
    bench.evaluate("() => kreisTest.leave('carol')")
    deadline = time.monotonic() + 10
    while stats(bench, "alice")["keyIds"]["self"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    after = stats(bench, "alice")["keyIds"]["self"]
    assert after != before
    wait_frames_rising(bench, "alice", "bob", more=20)
    assert stats(bench, "bob")["keyIds"]["alice"] == after
    # Carol's key for alice went out only to her; alice's fresh key never did.
    log = bench.evaluate("() => kreisTest.log.map(({ from, to }) => ({ from, to }))")
    assert not [m for m in log if m["to"] == "carol" and m["from"] == "alice"][1:]


def poll(bench: Any, expression: str, timeout: float = 5.0) -> None:
    """Polls a function expression in the bench page until it returns true (no eval: CSP)."""
    deadline = time.monotonic() + timeout
    while not bench.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out: {expression}"
        bench.wait_for_timeout(100)


def test_sas_identical_everywhere_and_changes_on_join(bench: Any) -> None:
    setup(bench, ["alice", "bob"])
    poll(bench, "() => Boolean(kreisTest.sas('alice') && kreisTest.sas('bob'))")
    sas_a = bench.evaluate("() => kreisTest.sas('alice')")
    sas_b = bench.evaluate("() => kreisTest.sas('bob')")
    assert sas_a is not None and sas_a == sas_b
    # digits read the same in German and English: 5 groups of 3
    assert len(sas_a["groups"]) == 5 and all(len(g) == 3 and g.isdigit() for g in sas_a["groups"])
    bench.evaluate("() => kreisTest.addPerson('carol', {})")
    three = "['alice', 'bob', 'carol'].map((p) => kreisTest.sas(p)?.digits)"
    poll(
        bench,
        f"() => {{ const s = {three}; return Boolean(s[0] && s[0] === s[1] && s[1] === s[2]); }}",
    )
    sas3 = [bench.evaluate(f"() => kreisTest.sas('{p}')") for p in ("alice", "bob", "carol")]
    assert sas3[0] == sas3[1] == sas3[2]
    assert sas3[0] != sas_a


def test_join_ratchets_key_and_newcomer_decodes(bench: Any) -> None:
    setup(bench, ["alice", "bob"])
    wait_frames_rising(bench, "alice", "bob", more=10)
    before = stats(bench, "alice")["keyIds"]["self"]
    bench.evaluate("() => kreisTest.addPerson('carol', {})")
    bench.evaluate("() => kreisTest.enable('carol')")
    for a, b in (("alice", "carol"), ("carol", "alice"), ("bob", "carol"), ("carol", "bob")):
        bench.evaluate("([a, b]) => kreisTest.connect(a, b)", [a, b])
    wait_frames_rising(bench, "alice", "carol", more=20)
    wait_frames_rising(bench, "alice", "bob", more=20)
    after = stats(bench, "alice")["keyIds"]["self"]
    assert after == (before + 1) % 2**32  # one ratchet step, nothing sent to bob again
    assert stats(bench, "bob")["keyIds"]["alice"] == after
    log = bench.evaluate("() => kreisTest.log.map(({ from, to }) => ({ from, to }))")
    assert len([m for m in log if m["from"] == "alice" and m["to"] == "bob"]) == 1


def test_switching_on_off_on_keeps_video_flowing(bench: Any) -> None:
    setup(bench, ["alice", "bob"])
    wait_frames_rising(bench, "alice", "bob", more=20)
    d0 = stats(bench, "bob")["decrypted"]
    bench.evaluate("() => kreisTest.disable('alice')")
    # bob was encrypted: alice's clear frames stay blocked until bob confirms himself
    bench.wait_for_timeout(800)
    assert stats(bench, "bob")["passedClear"] == 0
    bench.evaluate("() => kreisTest.confirmClear('bob')")
    bench.wait_for_timeout(300)
    clear0 = stats(bench, "bob")["passedClear"]
    wait_frames_rising(bench, "alice", "bob", more=30)
    s = stats(bench, "bob")
    assert s["passedClear"] > clear0
    assert stats(bench, "alice")["state"] == "off"
    bench.evaluate("() => kreisTest.enable('alice')")
    bench.wait_for_timeout(800)
    d1 = stats(bench, "bob")["decrypted"]
    assert d1 > d0
    wait_frames_rising(bench, "alice", "bob", more=30)
    s = stats(bench, "bob")
    assert s["decrypted"] > d1
    assert s["modes"]["alice"] == "on"
    # Switching lost at most a handful of frames, and never handed garbage to the decoder.
    assert s["droppedBy"]["badTag"] == 0


def test_frame_format_and_key_wrapping_units(bench: Any) -> None:
    result = bench.evaluate(
        """async () => {
      const f = await import('/static/e2ee/frame.js');
      const k = await import('/static/e2ee/keys.js');
      const out = {};
      const raw = crypto.getRandomValues(new Uint8Array(32));
      const fk = await f.frameKeyFromMediaKey(raw);
      const frame = new Uint8Array(200).map((_, i) => i);
      frame[0] = 0x10; // VP8 keyframe (P bit 0)
      const prefix = f.clearPrefixLength('video', frame, 'video/VP8');
      out.prefixKey = prefix;
      out.prefixDelta = f.clearPrefixLength('video', Uint8Array.of(1, 2, 3, 4), null);
      out.prefixOpus = f.clearPrefixLength('audio', frame, 'audio/opus');
      out.h264 = f.clearPrefixLength('video', frame, 'video/H264');
      const ct = await f.encryptFrame(fk, 7, 42, frame, prefix);
      out.magic = f.hasMagic(ct);
      out.trailer = f.readTrailer(ct);
      out.overhead = ct.byteLength - frame.byteLength;
      out.prefixKept = ct.slice(0, 10).join() === frame.slice(0, 10).join();
      out.roundTrip = (await f.decryptFrame(fk, ct, prefix)).join() === frame.join();
      const tampered = ct.slice(); tampered[5] ^= 1;  // in the clear prefix: AAD
      try { await f.decryptFrame(fk, tampered, prefix); out.tamperPrefix = 'accepted'; }
      catch { out.tamperPrefix = 'rejected'; }
      const tampered2 = ct.slice(); tampered2[50] ^= 1;
      try { await f.decryptFrame(fk, tampered2, prefix); out.tamperBody = 'accepted'; }
      catch { out.tamperBody = 'rejected'; }
      const r1 = await f.ratchetMediaKey(raw), r2 = await f.ratchetMediaKey(raw);
      out.ratchetStable = r1.join() === r2.join() && r1.join() !== raw.join();
      const a = await k.createIdentity(), b = await k.createIdentity();
      const c = await k.createIdentity();
      const wab = await k.deriveWrapKey(a.privateKey, b.publicKey, 'pa', 'pb');
      const wba = await k.deriveWrapKey(b.privateKey, a.publicKey, 'pa', 'pb');
      const payload = await k.wrapMediaKey(wab, 'pa', 'pb', 9, raw);
      const got = await k.unwrapMediaKey(wba, 'pa', 'pb', payload);
      out.unwrap = got.keyId === 9 && got.raw.join() === raw.join();
      const wrongDir = await k.deriveWrapKey(b.privateKey, a.publicKey, 'pb', 'pa');
      try { await k.unwrapMediaKey(wrongDir, 'pb', 'pa', payload); out.wrongDir = 'accepted'; }
      catch { out.wrongDir = 'rejected'; }
      const wcb = await k.deriveWrapKey(c.privateKey, a.publicKey, 'pa', 'pb');
      try { await k.unwrapMediaKey(wcb, 'pa', 'pb', payload); out.otherPeer = 'accepted'; }
      catch { out.otherPeer = 'rejected'; }
      // The room secret: a MAC over id, kind, name and public key; a salted wrap key.
      const t = await import('/static/e2ee/trust.js');
      const room = await t.roomKeys(t.newRoomSecret());
      const other = await t.roomKeys(t.newRoomSecret());
      const entry = { id: 'pa', kind: 'browser', name: 'Ahorn', public_key: a.publicKey };
      entry.auth = await t.memberTag(room.authKey, entry);
      out.mac = [
        await t.verifyMember(room.authKey, entry),
        await t.verifyMember(room.authKey, { ...entry, name: 'Birke' }),
        await t.verifyMember(room.authKey, { ...entry, public_key: c.publicKey }),
        await t.verifyMember(other.authKey, entry),
      ];
      const salted = await k.deriveWrapKey(a.privateKey, b.publicKey, 'pa', 'pb', room.wrapSalt);
      const p2 = await k.wrapMediaKey(salted, 'pa', 'pb', 9, raw);
      try { await k.unwrapMediaKey(wba, 'pa', 'pb', p2); out.unsalted = 'accepted'; }
      catch { out.unsalted = 'rejected'; }
      const fr = t.readFragment('#s=' + t.newRoomSecret() + '&e2ee=1');
      out.fragment = [fr.secret !== null, fr.required, t.readFragment('#s=short').secret];
      return out;
    }"""
    )
    assert result["prefixKey"] == 10
    assert result["prefixDelta"] == 3
    assert result["prefixOpus"] == 1
    assert result["h264"] == -1
    assert result["magic"] is True
    assert result["trailer"] == {"keyId": 7, "counter": 42}
    assert result["overhead"] == 28
    assert result["prefixKept"] and result["roundTrip"]
    assert result["tamperPrefix"] == result["tamperBody"] == "rejected"
    assert result["ratchetStable"]
    assert result["unwrap"]
    assert result["mac"] == [True, False, False, False]
    assert result["unsalted"] == "rejected"
    assert result["fragment"] == [True, True, None]
    assert result["wrongDir"] == result["otherPeer"] == "rejected"


def test_legacy_encoded_streams_path(bench: Any) -> None:
    has = bench.evaluate("() => 'createEncodedStreams' in RTCRtpSender.prototype")
    if not has:
        pytest.skip("this Chromium has no createEncodedStreams")
    legacy = {"legacy": True}
    setup(bench, ["alice", "bob"], alice=legacy, bob=legacy)
    wait_frames_rising(bench, "alice", "bob", more=20)
    wait_frames_rising(bench, "bob", "alice", more=20)
    assert stats(bench, "bob")["decrypted"] > 0


def test_h264_is_dropped_not_sent_in_clear(bench: Any) -> None:
    """A codec the frame format cannot handle is never sent, neither clear nor garbled."""
    for p in ("alice", "bob"):
        bench.evaluate("(id) => kreisTest.addPerson(id, {})", p)
    bench.evaluate("() => Promise.all([kreisTest.enable('alice'), kreisTest.enable('bob')])")
    link = bench.evaluate("() => kreisTest.connect('alice', 'bob', { videoCodec: 'video/H264' })")
    if link is None:
        pytest.skip("this Chromium cannot send H.264")
    bench.wait_for_timeout(2500)
    s = stats(bench, "alice")
    assert s["droppedBy"]["codec"] > 0
    assert frames(bench, "alice", "bob") == 0
    audio = received(bench, "alice", "bob")["audio"]
    assert audio["totalAudioEnergy"] > 0  # Opus on the same link is fine


def test_join_during_switch_on_still_ends_on(bench: Any) -> None:
    setup(bench, ["alice", "bob"], enable=False)
    bench.evaluate("() => { kreisTest.enable('alice'); return kreisTest.addPerson('carol', {}); }")
    bench.wait_for_timeout(1200)
    assert stats(bench, "alice")["state"] == "on"
    wait_frames_rising(bench, "alice", "bob", more=20)
    assert stats(bench, "bob")["perParticipant"]["alice"]["lastFrame"] == "encrypted"


def test_receiver_attached_after_remote_description_works(bench: Any) -> None:
    """The web client maps a receiver to its publisher from `down_offer.tracks`, after
    setRemoteDescription and before its answer: the transform must be in place then."""
    setup(bench, ["alice", "bob"], enable=True)
    bench.evaluate("() => kreisTest.addPerson('dora', {})")
    bench.evaluate("() => kreisTest.enable('dora')")
    bench.evaluate("() => kreisTest.connect('alice', 'dora', { attachAt: 'remote' })")
    wait_frames_rising(bench, "alice", "dora", more=20)
    assert stats(bench, "dora")["perParticipant"]["alice"]["decrypted"] > 0


def test_canary_chromium_ignores_a_receiver_transform_set_after_the_answer(bench: Any) -> None:
    """Documents a Chromium 156 limit the client must respect (README: attach early).
    If this starts failing, Chromium applies late transforms and the rule can relax."""
    setup(bench, ["alice", "bob"], enable=False)
    bench.evaluate("() => kreisTest.addPerson('dora', {})")
    bench.evaluate("() => kreisTest.connect('alice', 'dora', { attachAt: 1000 })")
    wait_frames_rising(bench, "alice", "dora", more=20)
    bench.wait_for_timeout(1000)
    s = stats(bench, "dora")
    assert s["passedClear"] == 0 and s["decrypted"] == 0 and s["dropped"] == 0, s


def test_replayed_old_key_does_not_silence_a_publisher(bench: Any) -> None:
    setup(bench, ["alice", "bob"])
    wait_frames_rising(bench, "alice", "bob", more=10)
    bench.evaluate("() => kreisTest.disable('alice')")
    bench.evaluate("() => kreisTest.enable('alice')")
    wait_frames_rising(bench, "alice", "bob", more=10)
    current = stats(bench, "alice")["keyIds"]["self"]
    bench.evaluate("() => kreisTest.replayFirstKey('alice', 'bob')")
    bench.wait_for_timeout(2500)  # longer than the bench's key grace period (2 s)
    wait_frames_rising(bench, "alice", "bob", more=20)
    assert stats(bench, "bob")["keyIds"]["alice"] == current


def test_room_end_forgets_every_key(bench: Any) -> None:
    setup(bench, ["alice", "bob"])
    wait_frames_rising(bench, "alice", "bob", more=10)
    bench.evaluate("() => kreisTest.tell('bob', { type: 'room_ended', room: 'x' })")
    bench.wait_for_timeout(300)
    s = stats(bench, "bob")
    assert s["state"] == "off" and s["sendKeyId"] is None, s
    assert s["receiveKeyIds"] == {} or all(not v for v in s["receiveKeyIds"].values()), s
    assert bench.evaluate("() => kreisTest.sas('bob')") is None
    before = frames(bench, "alice", "bob")
    bench.wait_for_timeout(1000)
    assert frames(bench, "alice", "bob") == before  # alice still encrypts; bob has no key
    assert stats(bench, "bob")["droppedBy"]["noKey"] > 0


def test_a_replayed_frame_is_dropped_and_counted(bench: Any) -> None:
    """A hostile hop between alice and bob replays frames it forwarded a second ago,
    byte for byte: bob's worker drops each one (counted as `replay`) and keeps
    decrypting the fresh ones. RFC 9605, section 9.3."""
    for p in ("alice", "bob"):
        bench.evaluate("(id) => kreisTest.addPerson(id, {})", p)
    bench.evaluate("() => Promise.all([kreisTest.enable('alice'), kreisTest.enable('bob')])")
    bench.evaluate("() => kreisTest.connectViaReplayer('alice', 'bob')")

    def decrypted() -> int:
        return int(stats(bench, "bob")["perParticipant"].get("alice", {}).get("decrypted", 0))

    deadline = time.monotonic() + 15
    while decrypted() < 100:
        assert time.monotonic() < deadline, stats(bench, "bob")
        bench.wait_for_timeout(200)
    before = stats(bench, "bob")
    assert before["droppedBy"]["replay"] == 0, before
    bench.evaluate("() => kreisTest.replay('alice', 'bob', 20)")
    bench.wait_for_timeout(2000)
    after = stats(bench, "bob")
    assert after["droppedBy"]["replay"] >= 15, after["droppedBy"]
    assert after["droppedBy"]["badTag"] == before["droppedBy"]["badTag"], after["droppedBy"]
    assert decrypted() > before["perParticipant"]["alice"]["decrypted"] + 30


def test_worker_starts_closed_and_refuses_an_old_send_key(bench: Any) -> None:
    """The worker itself, not the page, keeps the rules: an engine that follows the room
    sends nothing before it knows the room's state, and a send key id the worker used
    once is never taken again (its IVs are spent), whatever the page asks."""
    result = bench.evaluate(
        """async () => {
      const { createE2EE } = await import('/static/e2ee/index.js');
      const engine = createE2EE({ selfId: 'solo', sendSignal: () => {} }); // follows the room
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const pc1 = new RTCPeerConnection(), pc2 = new RTCPeerConnection();
      pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
      pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
      const tr = pc1.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
      engine.attachSender(tr.sender, 'audio');
      await pc1.setLocalDescription(); await pc2.setRemoteDescription(pc1.localDescription);
      await pc2.setLocalDescription(); await pc1.setRemoteDescription(pc2.localDescription);
      await new Promise((r) => setTimeout(r, 1500));
      const closed = await engine.stats();
      const raw = crypto.getRandomValues(new Uint8Array(32));
      engine.post({ type: 'setSendKey', keyId: 7, raw });
      await new Promise((r) => setTimeout(r, 500));
      const keyed = await engine.stats();
      const other = crypto.getRandomValues(new Uint8Array(32));
      engine.post({ type: 'setSendKey', keyId: 8, raw });
      engine.post({ type: 'setSendKey', keyId: 7, raw: other });
      await new Promise((r) => setTimeout(r, 500));
      const reused = await engine.stats();
      await new Promise((r) => setTimeout(r, 500));
      const after = await engine.stats();
      return { closed, keyed, reused, after };
    }"""
    )
    closed, keyed, reused, after = (result[k] for k in ("closed", "keyed", "reused", "after"))
    assert closed["sentClear"] == 0 and closed["droppedBy"]["noSendKey"] > 20, closed
    assert keyed["encrypted"] > 0 and keyed["sentClear"] == 0, keyed
    assert reused["droppedBy"]["oldSendKey"] == 1, reused
    assert after["encrypted"] == reused["encrypted"] and after["sentClear"] == 0, (reused, after)
