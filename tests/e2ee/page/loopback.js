/**
 * Test bench for the E2EE engine: several participants inside ONE page, no server.
 *
 * Each participant has its own engine; a JS relay plays the signalling server (keeps the
 * participant list with `e2ee` and `public_key`, stamps `from` on `e2ee_key`). Media goes
 * over real loopback RTCPeerConnections, one pair per (publisher → subscriber), which is
 * what an SFU looks like from the browser's side: publisher senders, subscriber receivers
 * mapped to the publisher's id. A "tap" subscriber without an engine records what really
 * travels (the encoded frames as depacketized from RTP).
 */

import { createE2EE, preferE2eeCodecs } from "/static/e2ee/index.js";

const log = [];

class Relay {
  constructor() {
    this.members = new Map(); // id → {engine, e2ee, public_key, blockKeys}
  }

  list() {
    return [...this.members].map(([id, m]) => ({
      id,
      e2ee: m.e2ee,
      public_key: m.public_key,
      auth: m.auth ?? null,
      commit: m.commit ?? null,
      reveal: m.reveal ?? null,
    }));
  }

  broadcast() {
    const participants = this.list();
    for (const m of this.members.values()) {
      const msg = { type: "participants", participants: structuredClone(participants) };
      setTimeout(() => m.engine.handleSignal(msg), 2);
    }
  }

  join(id, engine, options = {}) {
    this.members.set(id, { engine, e2ee: "off", public_key: undefined, ...options });
    this.broadcast();
  }

  /** A lying server: announce a state for someone that they never sent. */
  claim(id, state) {
    this.members.get(id).e2ee = state;
    this.broadcast();
  }

  /** A malicious server replays the first key message `from` ever sent `to`. */
  replayFirstKey(from, to) {
    const first = log.find((m) => m.from === from && m.to === to);
    const down = { type: "e2ee_key", from, payload: first.payload };
    this.members.get(to).engine.handleSignal(down);
  }

  leave(id) {
    this.members.delete(id);
    this.broadcast();
  }

  fromClient(id, msg) {
    const me = this.members.get(id);
    if (!me) return;
    if (msg.type === "e2ee_state") {
      me.e2ee = msg.state;
      if (msg.public_key) me.public_key = msg.public_key;
      me.auth = msg.auth ?? null;
      me.commit = msg.commit ?? null;
      me.reveal = msg.reveal ?? null;
      this.broadcast();
    } else if (msg.type === "e2ee_key") {
      const to = this.members.get(msg.to);
      log.push({ from: id, to: msg.to, type: "e2ee_key", payload: msg.payload });
      if (!to || to.blockKeys) return;
      const down = { type: "e2ee_key", from: id, payload: msg.payload };
      setTimeout(() => to.engine.handleSignal(down), 2);
    }
  }
}

const relay = new Relay();
const people = new Map(); // id → {engine, stream, links: []}
const links = []; // {from, to, pcSend, pcRecv, tapFrames?}

function forceCodec(transceiver, kind, mimeType) {
  const caps = RTCRtpReceiver.getCapabilities(kind).codecs;
  const codecs = caps.filter((c) => c.mimeType.toLowerCase() === mimeType.toLowerCase());
  if (!codecs.length) return false;
  transceiver.setCodecPreferences(codecs);
  return true;
}

/**
 * `attachAt`: "ontrack" (default), "remote" (after setRemoteDescription, before the answer:
 * what the web client does), or a number of ms after ontrack (too late in Chromium 156:
 * a receiver transform set after setLocalDescription is silently ignored).
 */
async function connect(fromId, toId, { tap = false, videoCodec = null, attachAt = "ontrack" } = {}) {
  const from = people.get(fromId);
  const to = people.get(toId);
  const pcSend = new RTCPeerConnection(from.engine.rtcConfiguration({}));
  const pcRecv = new RTCPeerConnection(
    tap ? {} : to.engine.rtcConfiguration({}),
  );
  const link = { from: fromId, to: toId, pcSend, pcRecv, tap, tapFrames: [] };
  links.push(link);
  pcSend.onicecandidate = (e) => e.candidate && pcRecv.addIceCandidate(e.candidate);
  pcRecv.onicecandidate = (e) => e.candidate && pcSend.addIceCandidate(e.candidate);
  for (const track of from.stream.getTracks()) {
    const tr = pcSend.addTransceiver(track, { direction: "sendonly" });
    if (videoCodec && track.kind === "video") {
      if (!forceCodec(tr, "video", videoCodec)) return null;
    } else {
      preferE2eeCodecs(tr, track.kind);
    }
    from.engine.attachSender(tr.sender, track.kind);
  }
  pcRecv.ontrack = (e) => {
    if (tap) {
      e.receiver.transform = new RTCRtpScriptTransform(tapWorker(), { kind: e.track.kind, link: links.indexOf(link) });
    } else if (typeof attachAt === "number") {
      setTimeout(() => to.engine.attachReceiver(e.receiver, fromId, e.track.kind), attachAt);
    } else if (attachAt === "ontrack") {
      to.engine.attachReceiver(e.receiver, fromId, e.track.kind);
    }
    if (e.track.kind === "audio") {
      // Chromium only counts received audio samples for a track that is played out.
      const audio = document.createElement("audio");
      audio.autoplay = true;
      audio.srcObject = new MediaStream([e.track]);
      document.body.append(audio);
      link.audio = audio;
    }
  };
  await pcSend.setLocalDescription();
  await pcRecv.setRemoteDescription(pcSend.localDescription);
  if (attachAt === "remote") {
    for (const tr of pcRecv.getTransceivers()) {
      to.engine.attachReceiver(tr.receiver, fromId, tr.receiver.track.kind);
    }
  }
  for (const tr of pcRecv.getTransceivers()) {
    if (videoCodec && tr.receiver.track.kind === "video") forceCodec(tr, "video", videoCodec);
    else preferE2eeCodecs(tr, tr.receiver.track.kind);
  }
  await pcRecv.setLocalDescription();
  await pcSend.setRemoteDescription(pcRecv.localDescription);
  return link;
}

/**
 * from → relay → to, audio only, where the relay is a hostile SFU hop (replay-worker.js)
 * that forwards the encrypted frames and can replay old ones on command.
 */
async function connectViaReplayer(fromId, toId) {
  const from = people.get(fromId);
  const to = people.get(toId);
  const worker = new Worker("/test/replay-worker.js", { type: "module" });
  const pair = async (pcA, pcB) => {
    pcA.onicecandidate = (e) => e.candidate && pcB.addIceCandidate(e.candidate);
    pcB.onicecandidate = (e) => e.candidate && pcA.addIceCandidate(e.candidate);
    await pcA.setLocalDescription();
    await pcB.setRemoteDescription(pcA.localDescription);
    await pcB.setLocalDescription();
    await pcA.setRemoteDescription(pcB.localDescription);
  };
  // hop 1: the publisher's engine encrypts; the relay records
  const up = new RTCPeerConnection(from.engine.rtcConfiguration({}));
  const relayIn = new RTCPeerConnection({});
  const tr = up.addTransceiver(from.stream.getAudioTracks()[0], { direction: "sendonly" });
  preferE2eeCodecs(tr, "audio");
  from.engine.attachSender(tr.sender, "audio");
  relayIn.ontrack = (e) => {
    e.receiver.transform = new RTCRtpScriptTransform(worker, { role: "record" });
  };
  await pair(up, relayIn);
  // hop 2: the relay sends what it recorded (or replays); the subscriber's engine decrypts
  const relayStream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const relayOut = new RTCPeerConnection({});
  const down = new RTCPeerConnection(to.engine.rtcConfiguration({}));
  const tr2 = relayOut.addTransceiver(relayStream.getAudioTracks()[0], { direction: "sendonly" });
  preferE2eeCodecs(tr2, "audio");
  tr2.sender.transform = new RTCRtpScriptTransform(worker, { role: "send" });
  down.ontrack = (e) => {
    to.engine.attachReceiver(e.receiver, fromId, "audio");
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.srcObject = new MediaStream([e.track]);
    document.body.append(audio);
  };
  await pair(relayOut, down);
  replayers.set(`${fromId}>${toId}`, worker);
  return true;
}
const replayers = new Map();

let tapWorkerInstance = null;
const tapSamples = [];
function tapWorker() {
  if (!tapWorkerInstance) {
    tapWorkerInstance = new Worker("/test/tap-worker.js", { type: "module" });
    tapWorkerInstance.onmessage = (e) => tapSamples.push(e.data);
  }
  return tapWorkerInstance;
}

async function addPerson(id, options = {}) {
  const engine = createE2EE({
    selfId: id,
    followRoom: false,
    switchDelayMs: options.switchDelayMs ?? 300,
    graceMs: options.graceMs ?? 2000,
    legacy: options.legacy ?? "auto",
    sendSignal: (msg) => setTimeout(() => relay.fromClient(id, msg), 2),
  });
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
  people.set(id, { engine, stream });
  relay.join(id, engine, { blockKeys: Boolean(options.blockKeys) });
  await engine.start();
  return engine;
}

async function inbound(pc) {
  const out = { video: null, audio: null };
  const report = await pc.getStats();
  for (const s of report.values()) {
    if (s.type !== "inbound-rtp") continue;
    if (s.kind === "video") {
      out.video = { framesDecoded: s.framesDecoded ?? 0, framesReceived: s.framesReceived ?? 0, codec: s.codecId };
    } else if (s.kind === "audio") {
      out.audio = { totalAudioEnergy: s.totalAudioEnergy ?? 0, samples: s.totalSamplesReceived ?? 0, packets: s.packetsReceived ?? 0 };
    }
  }
  for (const s of report.values()) {
    if (s.type === "codec" && out.video && s.id === out.video.codec) out.video.mimeType = s.mimeType;
  }
  return out;
}

window.kreisTest = {
  log,
  relay,
  people,
  tapSamples,
  addPerson,
  async connect(fromId, toId, options) {
    return (await connect(fromId, toId, options)) ? true : null;
  },
  claim(id, state) {
    relay.claim(id, state);
  },
  replayFirstKey(from, to) {
    relay.replayFirstKey(from, to);
  },
  async tell(id, msg) {
    await people.get(id).engine.handleSignal(msg);
  },
  async enable(id) {
    return people.get(id).engine.enable();
  },
  connectViaReplayer,
  replay(fromId, toId, n) {
    replayers.get(`${fromId}>${toId}`).postMessage({ type: "replay", n });
  },
  async confirmClear(id) {
    return people.get(id).engine.confirmClear();
  },
  async disable(id) {
    return people.get(id).engine.disable();
  },
  async stats(id) {
    return people.get(id).engine.stats();
  },
  sas(id) {
    return people.get(id).engine.sas();
  },
  async received(fromId, toId) {
    const link = links.find((l) => l.from === fromId && l.to === toId);
    return inbound(link.pcRecv);
  },
  async leave(id) {
    for (const l of links) {
      if (l.from === id || l.to === id) {
        l.pcSend.close();
        l.pcRecv.close();
      }
    }
    people.get(id).engine.close();
    people.delete(id);
    relay.leave(id);
  },
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};
document.body.dataset.ready = "1";
