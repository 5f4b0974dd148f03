/**
 * The two peer connections with the SFU (docs/protocol.md, "Media").
 *
 * Up: we offer, with one sendonly transceiver per source (mic, camera, screen), and
 * renegotiate when a source appears or goes. Down: the server offers the others'
 * tracks; we answer and map each transceiver's mid to its publisher and source.
 * No trickle ICE: every SDP we send has its candidates gathered.
 *
 * Every sender and receiver is created here and nowhere else, and each one passes
 * through `mediaHooks` — the place where end-to-end encryption attaches its frame
 * transforms (and may adjust the RTCPeerConnection configuration).
 */

const GATHER_TIMEOUT_MS = 5000;
const ANSWER_TIMEOUT_MS = 15000;

/** Extension points for E2EE; the defaults do nothing. */
export const mediaHooks = {
  /** Returns the RTCConfiguration to use for a new connection ("up" or "down"). */
  configure: (config, _direction) => config,
  /** A transceiver was created (up) or appeared in an offer (down, every one, used or
   * not), before negotiation: the place for setCodecPreferences and receiver transforms. */
  transceiver: (_transceiver, _kind, _direction) => {},
  /** A sender for one of our sources ("mic", "camera", "screen") was created. */
  sender: (_sender, _source, _kind) => {},
  /** A receiver for {participant, kind, source, mid} appeared. */
  receiver: (_receiver, _info) => {},
};

function rtcConfig(iceServers, direction) {
  const config = { iceServers: Array.isArray(iceServers) ? iceServers : [], bundlePolicy: "max-bundle" };
  return mediaHooks.configure(config, direction);
}

/** Resolves when ICE gathering is complete (or after a bounded wait). */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

/** VP8 first: the E2EE frame format keeps VP8 payload headers in clear. */
function preferVp8(transceiver) {
  if (!window.RTCRtpSender || !RTCRtpSender.getCapabilities) return;
  const caps = RTCRtpSender.getCapabilities("video");
  if (!caps || !transceiver.setCodecPreferences) return;
  const vp8 = caps.codecs.filter((c) => /vp8/i.test(c.mimeType));
  const rest = caps.codecs.filter((c) => /rtx|red|ulpfec/i.test(c.mimeType));
  if (vp8.length) {
    try {
      transceiver.setCodecPreferences([...vp8, ...rest]);
    } catch (_) {
      /* keep the browser's order */
    }
  }
}

/**
 * The camera goes out in three VP8 temporal layers (every 4th frame, every 2nd, all):
 * the SFU gives a receiver whose link is weak fewer frames, at the same picture size,
 * instead of no video (sfu/layers.py). Chromium (156) accepts this without listing it
 * in its capabilities; a browser that refuses it sends one layer.
 */
const TEMPORAL_LAYERS = "L1T3";

/**
 * Drops a=msid from inactive m-sections of a remote offer. A section that was retired
 * (someone left, or stopped sharing) can still carry the msid that a newer section for
 * the same person and source now uses, and Chromium refuses duplicate msids outright.
 * An inactive section carries no media, so its msid means nothing to us.
 */
export function withoutStaleMsids(sdp) {
  const sections = String(sdp).split(/\r\n(?=m=)/);
  return sections
    .map((section, i) => {
      if (i === 0 || !/\r\na=inactive(\r\n|$)/.test(section)) return section;
      return section
        .split("\r\n")
        .filter((line) => !line.startsWith("a=msid:"))
        .join("\r\n");
    })
    .join("\r\n");
}

/**
 * Asks our Opus encoder for in-band FEC: the browser turns it on only when the answer's
 * fmtp says useinbandfec=1, and the SFU (which forwards Opus untouched and decodes
 * nothing) answers without fmtp. Every Opus decoder understands FEC, so the receivers
 * need nothing; the encoder spends bits on it only when receivers report loss.
 */
export function withOpusFec(sdp) {
  const text = String(sdp);
  const pts = [...text.matchAll(/\r\na=rtpmap:(\d+) opus\/48000/gi)].map((m) => m[1]);
  let out = text;
  for (const pt of pts) {
    const fmtp = new RegExp(`\\r\\na=fmtp:${pt} ([^\\r]*)`);
    const found = out.match(fmtp);
    if (!found) {
      out = out.replace(new RegExp(`(\\r\\na=rtpmap:${pt} [^\\r]*)`), `$1\r\na=fmtp:${pt} useinbandfec=1`);
    } else if (!/useinbandfec=/.test(found[1])) {
      out = out.replace(fmtp, `\r\na=fmtp:${pt} ${found[1]};useinbandfec=1`);
    }
  }
  return out;
}

const DISCONNECTED_GRACE_MS = 8000;

/**
 * Calls `onBroken` once when the connection fails, or stays disconnected longer than a
 * short blip. aiortc does not do ICE restarts, so the caller rebuilds the media by
 * rejoining with its resume token.
 */
function watchConnection(pc, onBroken, label) {
  let timer = null;
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    onBroken();
  };
  pc.addEventListener("connectionstatechange", () => {
    performance.mark(`kreis:${label}-${pc.connectionState}`); // a timeline for tests (no data)
    clearTimeout(timer);
    if (pc.connectionState === "failed") report();
    else if (pc.connectionState === "disconnected") timer = setTimeout(report, DISCONNECTED_GRACE_MS);
  });
}

const KIND_OF = { mic: "audio", camera: "video", screen: "video" };

const QUALITY_EVERY_MS = 2000;

/**
 * How well each remote participant's media reaches us, judged every QUALITY_EVERY_MS
 * from our own receivers: {participant: {quality: "good"|"fair"|"poor" (packet loss),
 * videoStalled, audioFlowing}}. The SFU pauses video to us when our link cannot carry it (audio
 * keeps flowing); a stalled video with flowing audio is how that looks from here.
 * Published as a "kreis:link-quality" event on window (tiles.js shows it).
 */
export function judgeQuality(before, after) {
  const out = {};
  const old = new Map(before.map((s) => [`${s.participant}:${s.kind}:${s.source}`, s]));
  for (const s of after) {
    if (s.source === "screen") continue;
    const prev = old.get(`${s.participant}:${s.kind}:${s.source}`);
    if (!prev) continue;
    const entry = (out[s.participant] ||= { lost: 0, got: 0, videoStalled: false, audioFlowing: false });
    const got = s.packetsReceived - prev.packetsReceived;
    entry.got += got;
    entry.lost += Math.max(0, s.packetsLost - prev.packetsLost);
    // Stalled video: no frame decoded. Packets alone do not tell: the SFU keeps
    // probing a paused receiver's link with padding on the video stream.
    if (s.kind === "video") entry.videoStalled = (s.framesDecoded || 0) - (prev.framesDecoded || 0) === 0;
    else entry.audioFlowing = got > 0;
  }
  for (const entry of Object.values(out)) {
    const loss = entry.got + entry.lost > 0 ? entry.lost / (entry.got + entry.lost) : 0;
    entry.quality = loss >= 0.08 ? "poor" : loss >= 0.02 ? "fair" : "good";
  }
  return out;
}

/** Our sending connection. */
export class UpConnection {
  constructor(sig, iceServers) {
    this.sig = sig;
    this.pc = new RTCPeerConnection(rtcConfig(iceServers, "up"));
    this.transceivers = new Map(); // source -> RTCRtpTransceiver
    this.active = new Set(); // sources announced in the last up_offer
    this.chain = Promise.resolve();
    this.answerWaiter = null;
    this.onFailed = null;
    this.closed = false;
    watchConnection(this.pc, () => !this.closed && this.onFailed && this.onFailed(), "up");
  }

  /** Sets up mic and camera (tracks may be null when off) and sends the first offer. */
  start({ mic, camera, screen }) {
    this.addSource("mic", mic);
    this.addSource("camera", camera);
    if (screen) this.addSource("screen", screen);
    return this.negotiate();
  }

  addSource(source, track) {
    const init = { direction: "sendonly", streams: [] };
    let transceiver = null;
    if (source === "camera") {
      try {
        transceiver = this.pc.addTransceiver(track || "video", {
          ...init,
          sendEncodings: [{ scalabilityMode: TEMPORAL_LAYERS }],
        });
      } catch (_) {
        transceiver = null; // one layer then: a weak receiver gets no video rather than less
      }
    }
    transceiver = transceiver || this.pc.addTransceiver(track || KIND_OF[source], init);
    if (KIND_OF[source] === "video") preferVp8(transceiver);
    mediaHooks.transceiver(transceiver, KIND_OF[source], "up");
    this.transceivers.set(source, transceiver);
    this.active.add(source);
    mediaHooks.sender(transceiver.sender, source, KIND_OF[source]);
    return transceiver;
  }

  /** Puts a new track on a source (null = send nothing). */
  async setTrack(source, track) {
    const transceiver = this.transceivers.get(source);
    if (source === "screen") return this.setScreen(track);
    if (transceiver) await transceiver.sender.replaceTrack(track);
  }

  /** Screen share starts or stops: the set of tracks changes, so renegotiate. */
  async setScreen(track) {
    let transceiver = this.transceivers.get("screen");
    if (track) {
      if (!transceiver) {
        this.addSource("screen", track);
      } else {
        await transceiver.sender.replaceTrack(track);
        transceiver.direction = "sendonly";
        this.active.add("screen");
      }
    } else if (transceiver) {
      await transceiver.sender.replaceTrack(null);
      transceiver.direction = "inactive";
      this.active.delete("screen");
    }
    return this.negotiate();
  }

  /** One offer/answer round at a time; later calls queue behind earlier ones. */
  negotiate() {
    this.chain = this.chain.then(() => this.offerOnce()).catch((err) => {
      console.warn("kreis: up negotiation failed", err);
    });
    return this.chain;
  }

  async offerOnce() {
    if (this.closed) return;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await gathered(this.pc);
    const tracks = [];
    for (const [source, transceiver] of this.transceivers) {
      if (!this.active.has(source) || transceiver.mid === null) continue;
      tracks.push({ mid: transceiver.mid, kind: KIND_OF[source], source });
    }
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no up_answer")), ANSWER_TIMEOUT_MS);
      this.answerWaiter = (msg) => {
        clearTimeout(timer);
        resolve(msg);
      };
    });
    this.sig.send({ type: "up_offer", sdp: this.pc.localDescription.sdp, tracks });
    performance.mark("kreis:up-offer");
    const msg = await answer;
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: "answer", sdp: withOpusFec(msg.sdp) });
  }

  gotAnswer(msg) {
    const waiter = this.answerWaiter;
    this.answerWaiter = null;
    if (waiter) waiter(msg);
  }

  /** outbound-rtp counters per source, for the debugging hook. */
  async stats() {
    const out = [];
    for (const [source, transceiver] of this.transceivers) {
      const report = await transceiver.sender.getStats();
      for (const s of report.values()) {
        if (s.type !== "outbound-rtp") continue;
        out.push({
          source,
          kind: s.kind,
          packetsSent: s.packetsSent || 0,
          bytesSent: s.bytesSent || 0,
          retransmittedBytesSent: s.retransmittedBytesSent || 0,
          frameWidth: s.frameWidth || 0,
          scalabilityMode: s.scalabilityMode || "",
        });
      }
    }
    return out;
  }

  close() {
    this.closed = true;
    if (this.answerWaiter) this.answerWaiter = null;
    this.pc.close();
  }
}

/** The local UDP port of the connection a stats report belongs to (0 when unknown). */
function localPort(report) {
  for (const s of report.values()) {
    if (s.type !== "transport" || !s.selectedCandidatePairId) continue;
    const pair = report.get(s.selectedCandidatePairId);
    const local = pair && report.get(pair.localCandidateId);
    if (local && local.port) return local.port;
  }
  return 0;
}

/** Our receiving connection: the server offers, we answer. */
export class DownConnection {
  constructor(sig, iceServers) {
    this.sig = sig;
    this.pc = new RTCPeerConnection(rtcConfig(iceServers, "down"));
    this.current = new Map(); // mid -> {participant, kind, source, mid}
    this.seen = new WeakSet(); // transceivers already handed to mediaHooks.transceiver
    this.onTrack = null; // (info, track) => void
    this.onTrackGone = null; // (info) => void
    this.onFailed = null;
    this.closed = false;
    this.chain = Promise.resolve();
    watchConnection(this.pc, () => !this.closed && this.onFailed && this.onFailed(), "down");
    this.lastStats = [];
    this.qualityTimer = setInterval(() => this.judge(), QUALITY_EVERY_MS);
  }

  async judge() {
    if (this.closed) return;
    const now = await this.stats();
    const quality = judgeQuality(this.lastStats, now);
    this.lastStats = now;
    window.dispatchEvent(new CustomEvent("kreis:link-quality", { detail: quality }));
  }

  gotOffer(msg) {
    this.chain = this.chain.then(() => this.answerOnce(msg)).catch((err) => {
      console.warn("kreis: down negotiation failed", err);
    });
    return this.chain;
  }

  async answerOnce(msg) {
    if (this.closed) return;
    performance.mark("kreis:down-offer");
    await this.pc.setRemoteDescription({ type: "offer", sdp: withoutStaleMsids(msg.sdp) });
    const wanted = new Map();
    for (const info of msg.tracks || []) wanted.set(String(info.mid), info);
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.mid === null || transceiver.stopped) continue;
      const info = wanted.get(transceiver.mid);
      // A section the server did not name carries nothing for us: inactive, so nothing
      // can play through it. Every receiver, named or not, is handed to the hooks the
      // first time it appears, before the answer (E2EE's transform must be set by then).
      transceiver.direction = info ? "recvonly" : "inactive";
      if (!this.seen.has(transceiver)) {
        this.seen.add(transceiver);
        mediaHooks.transceiver(transceiver, info ? info.kind : transceiver.receiver.track.kind, "down");
      }
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    await gathered(this.pc);
    this.sig.send({ type: "down_answer", sdp: this.pc.localDescription.sdp });
    performance.mark("kreis:down-answer");
    this.mapTracks(wanted);
  }

  mapTracks(wanted) {
    const byMid = new Map();
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.mid !== null) byMid.set(transceiver.mid, transceiver);
    }
    for (const [mid, old] of this.current) {
      const now = wanted.get(mid);
      if (!now || now.participant !== old.participant || now.source !== old.source) {
        this.current.delete(mid);
        if (this.onTrackGone) this.onTrackGone(old);
      }
    }
    for (const [mid, info] of wanted) {
      if (this.current.has(mid)) continue;
      const transceiver = byMid.get(mid);
      if (!transceiver) continue;
      const entry = { mid, participant: info.participant, kind: info.kind, source: info.source };
      this.current.set(mid, entry);
      mediaHooks.receiver(transceiver.receiver, entry);
      if (this.onTrack) this.onTrack(entry, transceiver.receiver.track);
    }
  }

  /** The receiver for one mid (for audio levels and stats). */
  receiverFor(mid) {
    for (const transceiver of this.pc.getTransceivers()) {
      if (transceiver.mid === mid) return transceiver.receiver;
    }
    return null;
  }

  /** inbound-rtp counters per remote track. */
  async stats() {
    const out = [];
    for (const [mid, info] of this.current) {
      const receiver = this.receiverFor(mid);
      if (!receiver) continue;
      const report = await receiver.getStats();
      for (const s of report.values()) {
        if (s.type !== "inbound-rtp") continue;
        out.push({
          ...info,
          packetsReceived: s.packetsReceived || 0,
          bytesReceived: s.bytesReceived || 0,
          framesDecoded: s.framesDecoded || 0,
          totalAudioEnergy: s.totalAudioEnergy || 0,
          audioLevel: s.audioLevel || 0,
          concealedSamples: s.concealedSamples || 0,
          totalSamplesReceived: s.totalSamplesReceived || 0,
          frameWidth: s.frameWidth || 0,
          packetsLost: s.packetsLost || 0,
          localPort: localPort(report),
        });
      }
    }
    return out;
  }

  close() {
    this.closed = true;
    clearInterval(this.qualityTimer);
    this.pc.close();
  }
}
