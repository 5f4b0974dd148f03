/**
 * End-to-end encryption for the Kreis browser client: the one API the client uses.
 *
 *   const e2ee = createE2EE({ sendSignal: (msg) => ws.send(JSON.stringify(msg)) });
 *   pcConfig = e2ee.rtcConfiguration(pcConfig);      // before creating the peer connections
 *   await e2ee.start();                              // after `joined`: announce our public key
 *   e2ee.attachSender(sender, "video");              // every sender of the up connection
 *   e2ee.attachReceiver(receiver, participantId, kind); // every receiver of the down connection
 *   e2ee.handleSignal(msg);                          // every message from the server
 *
 * The engine follows the room setting (`settings.e2ee` in `joined`/`room_state`) unless
 * created with `followRoom: false`; `enable()`/`disable()` switch it by hand. Switching is
 * live: no renegotiation and no rejoin. See README.md for the design and frame format.
 */

import {
  OwnMediaKey,
  createIdentity,
  deriveWrapKey,
  unwrapMediaKey,
  wrapMediaKey,
} from "./keys.js";
import { computeSas } from "./sas.js";
import { hasEncodedStreams, hasScriptTransform, preferE2eeCodecs, supported } from "./support.js";

export { preferE2eeCodecs, supported };

/** Explicit keys are re-sent when a peer would otherwise have to ratchet this far. */
const RESEND_AFTER_RATCHETS = 4;
const MAX_PENDING_KEYS = 4;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class E2EE {
  constructor(options) {
    this.sendSignal = options.sendSignal;
    this.onStateChange = options.onStateChange ?? (() => {});
    this.onSasChange = options.onSasChange ?? (() => {});
    this.onReset = options.onReset ?? (() => {});
    this.requestKeyframe = options.requestKeyframe ?? (() => {});
    this.followRoom = options.followRoom ?? true;
    /** Between `e2ee_state: off` and the first clear frame, and before a new key is used. */
    this.switchDelayMs = options.switchDelayMs ?? 500;
    this.selfId = options.selfId ?? null;
    const legacy = options.legacy ?? "auto";
    this.useLegacy = legacy === true || (legacy === "auto" && !hasScriptTransform());
    this.isSupported = supported() && (!this.useLegacy || hasEncodedStreams());

    /** "off" | "on" | "unable" — what we announce in `e2ee_state`. */
    this.state = this.isSupported ? "off" : "unable";
    this.wanted = false;
    this.identity = null;
    this.ownKey = new OwnMediaKey();
    /** id → {publicKey, mode, wrapOut, wrapIn, sentKeyId, hadKey} for listed participants */
    this.peers = new Map();
    /** id → [payload]: keys that overtook the list entry carrying the sender's public key */
    this.pendingKeys = new Map();
    this.lastList = [];
    this.currentSas = null;
    /** Bumped by enable/disable: a pending mode switch only completes if still current. */
    this.modeToken = 0;
    /** Bumped whenever the send key changes: a delayed key switch only runs if still current. */
    this.keyToken = 0;
    this.serial = Promise.resolve();
    this.receivers = new WeakMap();
    this.senders = new WeakSet();
    this.nextRid = 1;
    this.statsWaiters = new Map();
    this.nextReq = 1;
    this.keyErrors = 0;
    this.worker = null;
    if (this.isSupported) {
      this.worker = new Worker(new URL("./worker.js", import.meta.url), {
        type: "module",
        name: "kreis-e2ee",
      });
      this.worker.onmessage = (event) => this.gotWorkerMessage(event.data);
      this.post({ type: "config", graceMs: options.graceMs ?? 5000, defaultMode: "on" });
    }
  }

  // --- feature detection and peer connection setup -----------------------------------

  supported() {
    return this.isSupported;
  }

  /** Adds what the legacy path needs (`encodedInsertableStreams`) to an RTCConfiguration. */
  rtcConfiguration(config = {}) {
    if (this.isSupported && this.useLegacy) return { ...config, encodedInsertableStreams: true };
    return config;
  }

  attachSender(sender, kind) {
    if (!this.isSupported || this.senders.has(sender)) return false;
    this.senders.add(sender);
    this.attach(sender, { role: "sender", kind });
    return true;
  }

  /** Maps a receiver to its publisher; call again when a renegotiation remaps it. */
  attachReceiver(receiver, participantId, kind) {
    if (!this.isSupported) return false;
    const known = this.receivers.get(receiver);
    if (known !== undefined) {
      this.post({ type: "mapReceiver", rid: known, participantId });
      return true;
    }
    const rid = this.nextRid++;
    this.receivers.set(receiver, rid);
    this.post({ type: "mapReceiver", rid, participantId });
    this.attach(receiver, { role: "receiver", kind, rid, participantId });
    return true;
  }

  attach(target, options) {
    if (this.useLegacy) {
      const { readable, writable } = target.createEncodedStreams();
      this.worker.postMessage({ type: "stream", readable, writable, options }, [
        readable,
        writable,
      ]);
    } else {
      target.transform = new RTCRtpScriptTransform(this.worker, options);
    }
  }

  // --- switching -----------------------------------------------------------------------

  /** Creates our ECDH key pair (once) and announces our state and public key. */
  async start() {
    await this.run(async () => {
      await this.ensureIdentity();
      this.announce();
      for (const [id, payloads] of [...this.pendingKeys]) {
        if (!this.peers.get(id)?.publicKey) continue;
        this.pendingKeys.delete(id);
        for (const payload of payloads) await this.gotKey(id, payload);
      }
      await this.updateSas();
    });
  }

  /**
   * Switches our sending to encrypted. From this call on nothing leaves in clear: the
   * worker drops our frames until the new key is set, then encrypts. Keys go out at once,
   * `e2ee_state: on` right after. A receiver still waiting for our key drops our frames
   * (fail closed) until it arrives, then asks for a keyframe. Joining a room that is
   * already encrypted therefore never sends a clear frame, not even the first one.
   */
  async enable() {
    this.wanted = true;
    if (!this.isSupported) {
      this.setState("unable");
      this.announce();
      return false;
    }
    const token = ++this.modeToken;
    this.post({ type: "setEncrypt", on: true });
    return this.run(async () => {
      if (token !== this.modeToken || !this.wanted) return false;
      if (this.state === "on" && this.ownKey.raw !== null) return true;
      await this.ensureIdentity();
      const key = this.ownKey.renew();
      for (const peer of this.peers.values()) peer.sentKeyId = null;
      // Hand the new key out before sending with it, as after a leave: a receiver that
      // got a frame under a key id it lacks would try a ratchet of its old key and drop
      // the frame (bad tag). Meanwhile the worker drops our frames: never sent in clear.
      await this.distribute();
      this.switchSendKeyLater(key);
      this.setState("on");
      this.announce();
      return true;
    });
  }

  /** Switches our sending to clear: announce first, stop encrypting after the delay. */
  async disable() {
    this.wanted = false;
    const token = ++this.modeToken;
    const was = await this.run(async () => {
      if (this.state !== "on") return false;
      this.setState("off");
      this.announce();
      return true;
    });
    if (!was) {
      await this.run(async () => {
        this.post({ type: "setEncrypt", on: false });
        this.post({ type: "setSendKey", keyId: 0, raw: null });
        this.ownKey.forget();
      });
      return;
    }
    await sleep(this.switchDelayMs);
    await this.run(async () => {
      if (token !== this.modeToken) return;
      this.post({ type: "setEncrypt", on: false });
      this.post({ type: "setSendKey", keyId: 0, raw: null });
      this.ownKey.forget();
    });
  }

  // --- signalling ----------------------------------------------------------------------

  /** Feed every message from the server; the engine picks what concerns it. */
  async handleSignal(msg) {
    switch (msg?.type) {
      case "joined":
        this.selfId = msg.id;
        if (this.lastList.length) await this.setParticipants(this.lastList);
        if (this.followRoom && msg.settings) await this.followSetting(msg.settings.e2ee);
        break;
      case "room_state":
        if (this.followRoom && msg.settings) await this.followSetting(msg.settings.e2ee);
        break;
      case "participants":
        await this.setParticipants(msg.participants ?? []);
        break;
      case "e2ee_key":
        await this.run(() => this.gotKey(msg.from, msg.payload));
        break;
      case "removed":
      case "room_ended":
        await this.reset();
        break;
      default:
        break;
    }
  }

  async followSetting(on) {
    // `wanted`, not `state`: room_state repeats on every settings change, and a switch
    // already under way (keys out, frames not yet encrypted) must not start over.
    if (on && !this.wanted) await this.enable();
    else if (!on && this.wanted) await this.disable();
  }

  /** The room's participant list (`participants` message): public keys, modes, joins, leaves. */
  async setParticipants(list) {
    await this.run(async () => {
      this.lastList = list;
      if (this.selfId === null) return; // `joined` says who we are; it replays the list
      const seen = new Set();
      let joined = false;
      for (const entry of list) {
        // Someone away (dropped, may resume) is gone for the keys: they held our key, so
        // we renew it; when they come back they are a newcomer and get the new one.
        if (!entry || entry.id === this.selfId || entry.away) continue;
        seen.add(entry.id);
        let peer = this.peers.get(entry.id);
        if (!peer) {
          peer = { publicKey: null, mode: null, sentKeyId: null, hadKey: false };
          this.peers.set(entry.id, peer);
          joined = true;
        }
        const mode = entry.e2ee === "on" ? "on" : "off";
        if (mode !== peer.mode) {
          peer.mode = mode;
          this.post({ type: "setMode", participantId: entry.id, mode });
        }
        const publicKey = typeof entry.public_key === "string" ? entry.public_key : null;
        if (publicKey !== peer.publicKey) {
          if (peer.publicKey !== null) {
            this.post({ type: "removeParticipant", participantId: entry.id });
          }
          peer.publicKey = publicKey;
          peer.wrapOut = null;
          peer.wrapIn = null;
          peer.sentKeyId = null;
          peer.hadKey = false;
        }
        const pending = this.pendingKeys.get(entry.id);
        if (pending && peer.publicKey) {
          this.pendingKeys.delete(entry.id);
          for (const payload of pending) await this.gotKey(entry.id, payload);
        }
      }
      let left = false;
      for (const id of [...this.peers.keys()]) {
        if (!seen.has(id)) {
          this.peers.delete(id);
          this.post({ type: "removeParticipant", participantId: id });
          left = true;
        }
      }
      if (this.ownKey.raw !== null) {
        if (left) {
          // Whoever left holds our key: a fresh one, sent to everyone, used after the delay.
          const key = this.ownKey.renew();
          for (const peer of this.peers.values()) peer.sentKeyId = null;
          await this.distribute();
          this.switchSendKeyLater(key);
        } else if (joined) {
          // A newcomer must not read what was said before: ratchet, the others follow.
          const key = await this.ownKey.ratchet();
          this.keyToken++;
          this.post({ type: "setSendKey", keyId: key.keyId, raw: key.raw });
          await this.distribute();
        } else {
          await this.distribute();
        }
      }
      await this.updateSas();
    });
  }

  switchSendKeyLater(key) {
    const token = ++this.keyToken;
    setTimeout(() => {
      this.run(async () => {
        if (token === this.keyToken && this.ownKey.keyId === key.keyId) {
          this.post({ type: "setSendKey", keyId: key.keyId, raw: key.raw });
        }
      });
    }, this.switchDelayMs);
  }

  /** Sends our current media key to each peer that lacks it (or lags many ratchet steps). */
  async distribute() {
    if (this.ownKey.raw === null || this.selfId === null || this.identity === null) return;
    const { keyId, raw } = this.ownKey;
    for (const [id, peer] of this.peers) {
      if (!peer.publicKey) continue;
      const behind = peer.sentKeyId === null ? Infinity : (keyId - peer.sentKeyId) >>> 0;
      if (behind < RESEND_AFTER_RATCHETS) continue;
      try {
        peer.wrapOut ??= await deriveWrapKey(
          this.identity.privateKey,
          peer.publicKey,
          this.selfId,
          id,
        );
        const payload = await wrapMediaKey(peer.wrapOut, this.selfId, id, keyId, raw);
        peer.sentKeyId = keyId;
        this.sendSignal({ type: "e2ee_key", to: id, payload });
      } catch {
        this.keyErrors++; // a broken public key: that peer cannot get our media
      }
    }
  }

  async gotKey(from, payload) {
    if (typeof from !== "string" || typeof payload !== "string") return;
    const peer = this.peers.get(from);
    if (!peer || !peer.publicKey || this.identity === null || this.selfId === null) {
      // The key can overtake the participant list that carries the sender's public key.
      const pending = this.pendingKeys.get(from) ?? [];
      if (pending.length < MAX_PENDING_KEYS) pending.push(payload);
      this.pendingKeys.set(from, pending);
      return;
    }
    try {
      peer.wrapIn ??= await deriveWrapKey(this.identity.privateKey, peer.publicKey, from, this.selfId);
      const { keyId, raw } = await unwrapMediaKey(peer.wrapIn, from, this.selfId, payload);
      this.post({ type: "setKey", participantId: from, keyId, raw });
      // Frames from this publisher may have been dropped while the key was on its way;
      // a keyframe lets its video start again at once (the SFU throttles these).
      peer.hadKey = true;
      this.requestKeyframe(from);
    } catch {
      this.keyErrors++;
    }
  }

  // --- what the page shows -------------------------------------------------------------

  /** The short authentication string: {en: [5 words], de: [5 words], indexes} or null. */
  sas() {
    return this.currentSas;
  }

  async updateSas() {
    if (!this.identity || !this.selfId) return;
    const entries = [{ id: this.selfId, public_key: this.identity.publicKey }];
    for (const e of this.lastList) {
      if (e && e.id !== this.selfId && typeof e.public_key === "string") entries.push(e);
    }
    const next = await computeSas(entries);
    const changed = JSON.stringify(next) !== JSON.stringify(this.currentSas);
    this.currentSas = next;
    if (changed) this.onSasChange(next);
  }

  /** Frame counters from the worker: {encrypted, decrypted, dropped, keyIds, ...}. */
  async stats() {
    if (!this.worker) {
      return { state: this.state, encrypted: 0, decrypted: 0, dropped: 0, keyIds: {} };
    }
    const reqId = this.nextReq++;
    const raw = await new Promise((resolve) => {
      this.statsWaiters.set(reqId, resolve);
      this.post({ type: "stats", reqId });
    });
    const keyIds = { self: raw.sendKeyId };
    for (const [id, s] of Object.entries(raw.perParticipant)) keyIds[id] = s.keyId;
    return { ...raw, keyIds, state: this.state, keyErrors: this.keyErrors };
  }

  /** Forgets every key, peer and the SAS (the meeting ended for us); the identity stays. */
  async reset() {
    this.wanted = false;
    this.modeToken++;
    this.keyToken++;
    await this.run(async () => {
      this.post({ type: "reset" });
      this.ownKey.forget();
      this.peers.clear();
      this.pendingKeys.clear();
      this.lastList = [];
      if (this.state === "on") this.setState("off");
      if (this.currentSas !== null) {
        this.currentSas = null;
        this.onSasChange(null);
      }
      this.onReset();
    });
  }

  close() {
    this.worker?.terminate();
    this.worker = null;
  }

  // --- internals -----------------------------------------------------------------------

  run(fn) {
    const result = this.serial.then(fn);
    this.serial = result.catch(() => {});
    return result;
  }

  post(msg) {
    this.worker?.postMessage(msg);
  }

  gotWorkerMessage(msg) {
    if (msg?.type === "stats") {
      const resolve = this.statsWaiters.get(msg.reqId);
      this.statsWaiters.delete(msg.reqId);
      resolve?.(msg.stats);
    }
  }

  async ensureIdentity() {
    this.identity ??= await createIdentity();
  }

  announce() {
    const msg = { type: "e2ee_state", state: this.state };
    if (this.identity && this.state !== "unable") msg.public_key = this.identity.publicKey;
    this.sendSignal(msg);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onStateChange(state);
  }
}

/** Creates the engine; see the module comment for the calls a client makes. */
export function createE2EE(options) {
  return new E2EE(options);
}
