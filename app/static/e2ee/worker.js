/**
 * The E2EE frame transform, run in one dedicated module Worker per page.
 *
 * Both browser APIs end up here: `RTCRtpScriptTransform` delivers an `rtctransform`
 * event, the older `createEncodedStreams` path posts the streams in a `stream` message.
 * One worker serves every sender and receiver of the page so that there is exactly one
 * frame counter per media key (audio, camera and screen share all use the same key; the
 * counter is what keeps the AES-GCM IVs unique).
 *
 * Fail closed: a frame that claims encryption but does not decrypt, a clear frame from a
 * participant whose mode is "on", and our own frame while we encrypt but lack a key are
 * dropped and counted, never handed on. The worker does not rely on the page for that:
 * it starts closed (encrypting, no key: every frame we send is dropped) until the page
 * says otherwise; it never takes a send key id twice (an IV is never reused, whatever the
 * page does); it drops a replayed frame (per publisher and key id, a window of
 * REPLAY_WINDOW counters); and it drops a frame whose codec it cannot name as VP8 or Opus.
 */

import {
  MAX_RATCHET_STEPS,
  clearPrefixLength,
  decryptFrame,
  encryptFrame,
  frameKeyFromMediaKey,
  hasMagic,
  nextKeyId,
  ratchetMediaKey,
  readTrailer,
} from "./frame.js";

/** Our sending side: null key means "encrypting but no key yet" → drop. Starts closed. */
const send = { encrypt: true, keyId: null, frameKey: null, counter: 0 };
/** Every send key id this worker ever used: a key id is never taken twice (IV uniqueness). */
const usedSendKeyIds = new Set();
/** Frames per publisher and key id that a replay check remembers (~20 s of audio+video). */
const REPLAY_WINDOW = 1024;

/**
 * Receiving side, per publishing participant:
 * { mode: "on"|"off", latest: keyId|null, keys: Map<keyId, {raw, frameKey, derived, expires}> }
 */
const peers = new Map();
/** Receiver transforms by id (rid) → participant id; the SFU can remap a receiver. */
const receiverOwner = new Map();

let graceMs = 5000;
let defaultMode = "on";

const stats = {
  encrypted: 0,
  decrypted: 0,
  dropped: 0,
  passedClear: 0,
  sentClear: 0,
  droppedBy: {
    noKey: 0,
    badTag: 0,
    clear: 0,
    codec: 0,
    noSendKey: 0,
    unknownReceiver: 0,
    replay: 0,
    oldSendKey: 0,
  },
  perParticipant: {},
};

function peer(participantId) {
  let p = peers.get(participantId);
  if (!p) {
    p = { mode: defaultMode, latest: null, keys: new Map() };
    peers.set(participantId, p);
  }
  return p;
}

function participantStats(participantId) {
  let s = stats.perParticipant[participantId];
  if (!s) {
    s = { decrypted: 0, dropped: 0, passedClear: 0, keyId: null, lastFrame: null };
    stats.perParticipant[participantId] = s;
  }
  return s;
}

function drop(reason, participantId) {
  stats.dropped++;
  stats.droppedBy[reason]++;
  if (participantId) participantStats(participantId).dropped++;
}

/** Older keys of a participant stay usable for `graceMs` after a newer one is in use. */
function expireOthers(p, keyId) {
  const until = Date.now() + graceMs;
  for (const [id, entry] of p.keys) {
    if (id !== keyId && entry.expires === null) entry.expires = until;
  }
}

function sweep() {
  const now = Date.now();
  for (const p of peers.values()) {
    for (const [id, entry] of p.keys) {
      if (entry.expires !== null && entry.expires <= now) p.keys.delete(id);
    }
  }
}
setInterval(sweep, 1000);

async function setPeerKey(participantId, keyId, raw) {
  const p = peer(participantId);
  // Key ids only grow within a publisher's session; an older one is a replay (a server
  // could otherwise expire the current key and silence that publisher).
  const behind = p.latest === null ? 0 : (p.latest - keyId) >>> 0;
  if (behind >= 1 && behind < 0x80000000) return;
  const frameKey = await frameKeyFromMediaKey(raw);
  p.keys.set(keyId, { raw, frameKey, derived: false, expires: null });
  p.latest = keyId;
  expireOthers(p, keyId);
}

/** Looks up the key for a frame; derives ratchet steps forward from the latest key. */
async function keyFor(p, keyId) {
  const found = p.keys.get(keyId);
  if (found) return found;
  if (p.latest === null) return null;
  const steps = (keyId - p.latest) >>> 0;
  if (steps < 1 || steps > MAX_RATCHET_STEPS) return null;
  let id = p.latest;
  let raw = p.keys.get(id)?.raw;
  if (!raw) return null;
  for (let i = 0; i < steps; i++) {
    id = nextKeyId(id);
    const known = p.keys.get(id);
    if (known) {
      raw = known.raw; // an explicit key on the way wins over our own derivation
      continue;
    }
    raw = await ratchetMediaKey(raw);
    const frameKey = await frameKeyFromMediaKey(raw);
    p.keys.set(id, { raw, frameKey, derived: true, expires: null });
  }
  return p.keys.get(keyId) ?? null;
}

/**
 * Whether a frame's counter is new for its key (and remembers it). Called only after the
 * tag verified, so nobody without the key can burn counters. Synchronous: check and mark
 * cannot interleave with another transform.
 */
function freshCounter(entry, counter) {
  const r = (entry.replay ??= { top: -1, seen: new Uint8Array(REPLAY_WINDOW) });
  if (counter > r.top) {
    const steps = r.top < 0 ? REPLAY_WINDOW : Math.min(counter - r.top, REPLAY_WINDOW);
    for (let i = 1; i <= steps; i++) r.seen[(counter - steps + i + REPLAY_WINDOW) % REPLAY_WINDOW] = 0;
    r.top = counter;
    r.seen[counter % REPLAY_WINDOW] = 1;
    return true;
  }
  if (r.top - counter >= REPLAY_WINDOW) return false; // older than the window: cannot tell
  if (r.seen[counter % REPLAY_WINDOW]) return false;
  r.seen[counter % REPLAY_WINDOW] = 1;
  return true;
}

function mimeTypeOf(frame) {
  try {
    return frame.getMetadata?.().mimeType ?? null;
  } catch {
    return null;
  }
}

async function encodeFrame(frame, controller, options) {
  if (!send.encrypt) {
    stats.sentClear++;
    controller.enqueue(frame);
    return;
  }
  const data = new Uint8Array(frame.data);
  if (data.byteLength === 0) {
    controller.enqueue(frame);
    return;
  }
  if (!send.frameKey) {
    drop("noSendKey");
    return;
  }
  // The codec must be named: an unnamed one is dropped, never guessed from the kind.
  const mimeType = mimeTypeOf(frame);
  const prefixLen = mimeType ? clearPrefixLength(options.kind, data, mimeType) : -1;
  if (prefixLen < 0) {
    drop("codec");
    return;
  }
  if (send.counter === 0xffffffff) {
    // The IV space of this key is used up (years of media): never reuse an IV.
    drop("noSendKey");
    return;
  }
  const counter = send.counter;
  send.counter = (send.counter + 1) >>> 0;
  const out = await encryptFrame(send.frameKey, send.keyId, counter, data, prefixLen);
  frame.data = out.buffer;
  stats.encrypted++;
  controller.enqueue(frame);
}

async function decodeFrame(frame, controller, options) {
  const participantId = receiverOwner.get(options.rid) ?? options.participantId ?? null;
  if (participantId === null) {
    drop("unknownReceiver");
    return;
  }
  const data = new Uint8Array(frame.data);
  if (data.byteLength === 0) {
    controller.enqueue(frame);
    return;
  }
  const p = peer(participantId);
  const ps = participantStats(participantId);
  if (!hasMagic(data)) {
    if (p.mode === "on") {
      drop("clear", participantId);
      return;
    }
    stats.passedClear++;
    ps.passedClear++;
    ps.lastFrame = "clear";
    controller.enqueue(frame);
    return;
  }
  const { keyId } = readTrailer(data);
  const entry = await keyFor(p, keyId);
  if (!entry) {
    drop("noKey", participantId);
    return;
  }
  // A receiver names the codec too; one we do not know is dropped (not decrypted as VP8).
  const prefixLen = clearPrefixLength(options.kind, data, mimeTypeOf(frame));
  if (prefixLen < 0) {
    drop("codec", participantId);
    return;
  }
  let plain;
  try {
    plain = await decryptFrame(entry.frameKey, data, prefixLen);
  } catch {
    drop("badTag", participantId);
    return;
  }
  if (!freshCounter(entry, readTrailer(data).counter)) {
    drop("replay", participantId);
    return;
  }
  const ahead = p.latest === null ? 0 : (keyId - p.latest) >>> 0;
  if (ahead >= 1 && ahead <= MAX_RATCHET_STEPS) {
    // A ratchet step proved itself (the tag verified): older keys now expire.
    entry.derived = false;
    p.latest = keyId;
    expireOthers(p, keyId);
  }
  frame.data = plain.buffer;
  stats.decrypted++;
  ps.decrypted++;
  ps.keyId = keyId;
  ps.lastFrame = "encrypted";
  controller.enqueue(frame);
}

function runTransform(readable, writable, options) {
  const handler = options.role === "sender" ? encodeFrame : decodeFrame;
  const transform = new TransformStream({
    transform: (frame, controller) => handler(frame, controller, options),
  });
  readable
    .pipeThrough(transform)
    .pipeTo(writable)
    .catch(() => {
      // The sender or receiver went away; nothing to clean up.
    });
}

// RTCRtpScriptTransform (Chrome 141+, Firefox 117+, Safari 15.4+).
self.onrtctransform = (event) => {
  const t = event.transformer;
  runTransform(t.readable, t.writable, t.options);
};

// Commands from the page (index.js). Messages are handled strictly in order.
let queue = Promise.resolve();
self.onmessage = (event) => {
  const msg = event.data;
  queue = queue.then(() => handle(msg)).catch((err) => {
    self.postMessage({ type: "error", message: String(err) });
  });
};

async function handle(msg) {
  switch (msg.type) {
    case "stream": // createEncodedStreams fallback
      runTransform(msg.readable, msg.writable, msg.options);
      break;
    case "config":
      if (typeof msg.graceMs === "number") graceMs = msg.graceMs;
      if (msg.defaultMode === "on" || msg.defaultMode === "off") defaultMode = msg.defaultMode;
      break;
    case "setEncrypt":
      send.encrypt = Boolean(msg.on);
      break;
    case "setSendKey":
      if (msg.raw === null) {
        send.frameKey = null;
        send.keyId = null;
      } else {
        // Set both at once: a frame must never pair one key id with another key.
        // The counter restarts only with a new key id (every new key id is a new key).
        const keyId = msg.keyId >>> 0;
        if (keyId === send.keyId) break; // the same key again: keep its counter going
        if (usedSendKeyIds.has(keyId)) {
          // A key id we used before (with whatever key): its counters are spent. Stay
          // closed rather than risk an IV twice.
          stats.droppedBy.oldSendKey++;
          send.frameKey = null;
          send.keyId = null;
          break;
        }
        const frameKey = await frameKeyFromMediaKey(msg.raw);
        usedSendKeyIds.add(keyId);
        send.counter = 0;
        send.frameKey = frameKey;
        send.keyId = keyId;
      }
      break;
    case "setKey":
      await setPeerKey(msg.participantId, msg.keyId >>> 0, msg.raw);
      break;
    case "setMode":
      peer(msg.participantId).mode = msg.mode === "off" ? "off" : "on";
      break;
    case "removeParticipant": {
      // Gone, or a new session (new public key): its keys expire, key ids start afresh.
      const p = peers.get(msg.participantId);
      if (p) {
        expireOthers(p, null);
        p.latest = null;
      }
      break;
    }
    case "reset":
      // The meeting is over for us: no key outlives it.
      peers.clear();
      receiverOwner.clear();
      send.encrypt = true; // closed again until the page knows the next room's state
      send.frameKey = null;
      send.keyId = null;
      break;
    case "mapReceiver":
      receiverOwner.set(msg.rid, msg.participantId);
      break;
    case "stats":
      self.postMessage({
        type: "stats",
        reqId: msg.reqId,
        stats: {
          ...structuredClone(stats),
          sendKeyId: send.encrypt ? send.keyId : null,
          modes: Object.fromEntries([...peers].map(([id, p]) => [id, p.mode])),
          receiveKeyIds: Object.fromEntries(
            [...peers].map(([id, p]) => [id, [...p.keys.keys()]]),
          ),
        },
      });
      break;
    default:
      break;
  }
}
