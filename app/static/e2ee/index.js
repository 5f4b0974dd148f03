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
 *
 * Against the server (docs/security.md): with `roomSecret` (the invite link's fragment)
 * every membership entry must carry a valid MAC before it gets a key; "encrypted" is
 * sticky (a switch-off holds until `confirmClear()`, never with `required`); a public-key
 * change is a leave plus a join; a resume re-sends a fresh key; the safety number is a
 * commit-then-reveal round (round.js).
 */

import {
  OwnMediaKey,
  createIdentity,
  deriveWrapKey,
  unwrapMediaKey,
  wrapMediaKey,
} from "./keys.js";
import { SafetyRound } from "./round.js";
import { memberTag, roomKeys, verifyMember } from "./trust.js";
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
    /** Called when who is verified, the held state or a safety-check problem changes. */
    this.onTrustChange = options.onTrustChange ?? (() => {});
    /** The room secret from the link's fragment (base64url), or null: nobody can be verified. */
    this.secret = options.roomSecret ?? null;
    this.roomKeys = null;
    /** The link says "E2EE required": this page never sends or accepts clear media. */
    this.required = Boolean(options.required);
    /** Set once we were encrypted: a switch-off then waits for `confirmClear()`. */
    this.wasOn = false;
    this.clearConfirmed = false;
    /** The room says "off" but we stay encrypted until the person confirms. */
    this.held = false;
    this.roomOn = null;
    this.auth = null;
    this.safety = new SafetyRound();
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
    /** id → {publicKey, mode, verified, wrapOut, wrapIn, sentKeyId, hadKey} for listed participants */
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
      // The worker starts closed (drops every frame we send); by hand the engine starts clear.
      if (!this.followRoom && !this.required) this.post({ type: "setEncrypt", on: false });
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

  /** The room secret can arrive late: the page that starts a room makes it then. */
  setRoomSecret(secret, required = false) {
    return this.run(async () => {
      this.secret = secret;
      this.roomKeys = null;
      this.required = this.required || Boolean(required);
      for (const peer of this.peers.values()) {
        peer.checked = null;
        peer.verified = null;
      }
      await this.ensureRoomKeys();
    });
  }

  // --- switching -----------------------------------------------------------------------

  /** Creates our ECDH key pair (once) and announces our state and public key. */
  async start() {
    await this.run(async () => {
      await this.ensureIdentity();
      await this.ensureRoomKeys();
      const mine = this.lastList.find((e) => e && e.id === this.selfId);
      if (mine) await this.authenticateSelf(mine);
      await this.announce();
      for (const [id, payloads] of [...this.pendingKeys]) {
        const peer = this.peers.get(id);
        if (!peer || !this.trusted(peer)) continue;
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
      await this.announce();
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
      this.wasOn = true;
      this.clearConfirmed = false;
      this.held = false;
      this.postModes();
      this.setState("on");
      await this.announce();
      this.onTrustChange();
      return true;
    });
  }

  /** Whether clear media may be sent and rendered: never once encrypted, until confirmed. */
  clearAllowed() {
    return !this.required && (!this.wasOn || this.clearConfirmed);
  }

  /** The person confirmed on their own screen that the meeting may go on unencrypted. */
  async confirmClear() {
    if (this.required) return false;
    this.clearConfirmed = true;
    this.held = false;
    await this.run(async () => this.postModes());
    if (this.roomOn === false) await this.switchOff();
    this.onTrustChange();
    return true;
  }

  /**
   * Switches our sending to clear by hand: the person's own decision, so it also counts as
   * their confirmation (`confirmClear`). Refused when the link requires E2EE.
   */
  async disable() {
    if (this.required) return;
    this.clearConfirmed = true;
    this.held = false;
    await this.run(async () => this.postModes());
    await this.switchOff();
  }

  /** Announce "off" first, stop encrypting after the delay (only when clear is allowed). */
  async switchOff() {
    if (!this.clearAllowed()) return;
    this.wanted = false;
    const token = ++this.modeToken;
    const was = await this.run(async () => {
      if (this.state !== "on") return false;
      this.setState("off");
      await this.announce();
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
        // A resume: the others forgot our key while we were away. A fresh one, to all.
        await this.run(async () => {
          if (this.ownKey.raw === null) return;
          const key = this.ownKey.renew();
          for (const peer of this.peers.values()) peer.sentKeyId = null;
          await this.distribute();
          this.switchSendKeyLater(key);
        });
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
    this.roomOn = Boolean(on);
    // `wanted`, not `state`: room_state repeats on every settings change, and a switch
    // already under way (keys out, frames not yet encrypted) must not start over.
    if (on || this.required) {
      const wasHeld = this.held;
      this.held = false;
      if (!this.wanted) await this.enable();
      if (wasHeld) this.onTrustChange();
    } else if (this.clearAllowed()) {
      if (this.wanted) await this.switchOff();
      else this.post({ type: "setEncrypt", on: false }); // the room is clear: open the worker
    } else if (!this.held) {
      // Switched off (by a leader, or forged by the server) after we were encrypted: we
      // keep encrypting and keep dropping clear frames until the person confirms.
      this.held = true;
      this.onTrustChange();
    }
  }

  /** The mode the worker applies to a publisher: "off" (clear passes) only when allowed. */
  effectiveMode(peer) {
    return peer.mode === "off" && this.clearAllowed() ? "off" : "on";
  }

  postModes() {
    for (const [id, peer] of this.peers) {
      this.post({ type: "setMode", participantId: id, mode: this.effectiveMode(peer) });
    }
  }

  /** Whether a peer may get our key and may give us theirs. */
  trusted(peer) {
    return Boolean(peer.publicKey) && (this.secret === null || peer.verified === true);
  }

  wrapSalt(peer) {
    return this.secret !== null && peer.verified === true ? this.roomKeys.wrapSalt : null;
  }

  async ensureRoomKeys() {
    if (this.secret !== null && this.roomKeys === null) this.roomKeys = await roomKeys(this.secret);
  }

  /** The room's participant list (`participants` message): public keys, modes, joins, leaves. */
  async setParticipants(list) {
    await this.run(async () => {
      this.lastList = list;
      if (this.selfId === null) return; // `joined` says who we are; it replays the list
      await this.ensureRoomKeys();
      const seen = new Set();
      let joined = false;
      let left = false;
      let trustChanged = false;
      for (const entry of list) {
        if (!entry) continue;
        if (entry.id === this.selfId) {
          await this.authenticateSelf(entry);
          continue;
        }
        // Someone away (dropped, may resume) is gone for the keys: they held our key, so
        // we renew it; when they come back they are a newcomer and get the new one.
        if (entry.away) continue;
        seen.add(entry.id);
        let peer = this.peers.get(entry.id);
        if (!peer) {
          peer = { publicKey: null, mode: null, verified: null, checked: null, sentKeyId: null, hadKey: false };
          this.peers.set(entry.id, peer);
          trustChanged = true;
        }
        const publicKey = typeof entry.public_key === "string" ? entry.public_key : null;
        const wasTrusted = this.trusted(peer);
        if (publicKey !== peer.publicKey) {
          if (peer.publicKey !== null) {
            // A new public key for someone listed: a leave plus a join. Whoever holds the
            // new key must not read what our current key protects (and the old one expires).
            this.post({ type: "removeParticipant", participantId: entry.id });
            if (wasTrusted) left = true;
          }
          peer.publicKey = publicKey;
          peer.wrapOut = null;
          peer.wrapIn = null;
          peer.sentKeyId = null;
          peer.hadKey = false;
        }
        if (this.roomKeys !== null) {
          const checked = `${entry.auth}|${entry.kind}|${entry.name}|${publicKey}`;
          if (checked !== peer.checked) {
            peer.checked = checked;
            const verified = publicKey !== null && (await verifyMember(this.roomKeys.authKey, entry));
            if (verified !== peer.verified) {
              if (peer.verified === true) left = true; // it lost its proof: as if it left
              peer.verified = verified;
              peer.wrapOut = null;
              peer.wrapIn = null;
              peer.sentKeyId = null;
              trustChanged = true;
            }
          }
        }
        // Someone gets our key for the first time (new, back, or now verified): a newcomer
        // must not read what was said before, so ratchet first.
        if (!wasTrusted && this.trusted(peer)) joined = true;
        const mode = entry.e2ee === "on" ? "on" : "off";
        if (mode !== peer.mode) {
          peer.mode = mode;
          this.post({ type: "setMode", participantId: entry.id, mode: this.effectiveMode(peer) });
        }
        const pending = this.pendingKeys.get(entry.id);
        if (pending && this.trusted(peer)) {
          this.pendingKeys.delete(entry.id);
          for (const payload of pending) await this.gotKey(entry.id, payload);
        }
      }
      for (const [id, peer] of [...this.peers]) {
        if (!seen.has(id)) {
          this.peers.delete(id);
          this.post({ type: "removeParticipant", participantId: id });
          if (this.trusted(peer)) left = true;
          trustChanged = true;
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
      if (trustChanged) this.onTrustChange();
    });
  }

  /** Our own entry as the server lists it: the MAC covers exactly what the others see. */
  async authenticateSelf(entry) {
    if (this.roomKeys === null || this.identity === null) return;
    const tag = await memberTag(this.roomKeys.authKey, {
      id: this.selfId,
      kind: entry.kind,
      name: entry.name,
      public_key: this.identity.publicKey,
    });
    if (tag !== this.auth) {
      this.auth = tag;
      await this.announce();
    }
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
      if (!this.trusted(peer)) continue; // unverified: no key, ever
      const behind = peer.sentKeyId === null ? Infinity : (keyId - peer.sentKeyId) >>> 0;
      if (behind < RESEND_AFTER_RATCHETS) continue;
      try {
        peer.wrapOut ??= await deriveWrapKey(
          this.identity.privateKey,
          peer.publicKey,
          this.selfId,
          id,
          this.wrapSalt(peer),
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
    if (!peer || !this.trusted(peer) || this.identity === null || this.selfId === null) {
      // The key can overtake the participant list that carries the sender's public key.
      const pending = this.pendingKeys.get(from) ?? [];
      if (pending.length < MAX_PENDING_KEYS) pending.push(payload);
      this.pendingKeys.set(from, pending);
      return;
    }
    try {
      peer.wrapIn ??= await deriveWrapKey(
        this.identity.privateKey,
        peer.publicKey,
        from,
        this.selfId,
        this.wrapSalt(peer),
      );
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

  /** The safety number {digits, groups} once every member's reveal checks out, else null. */
  sas() {
    return this.currentSas;
  }

  /** What the page shows about trust: verified members, problems, held, required. */
  trust() {
    const members = [];
    for (const [id, peer] of this.peers) {
      if (!peer.publicKey) continue;
      members.push({ id, verified: this.secret === null ? null : peer.verified === true });
    }
    return {
      hasSecret: this.secret !== null,
      required: this.required,
      held: this.held,
      members,
      problems: [...this.safety.problems],
    };
  }

  async updateSas() {
    if (!this.identity || !this.selfId) return;
    const others = this.lastList.filter((e) => e && e.id !== this.selfId);
    const problemsBefore = this.safety.problems.join();
    if (await this.safety.update(this.selfId, this.identity.publicKey, others)) await this.announce();
    const next = this.safety.sas;
    const changed = JSON.stringify(next) !== JSON.stringify(this.currentSas);
    this.currentSas = next;
    if (changed) this.onSasChange(next);
    if (problemsBefore !== this.safety.problems.join()) this.onTrustChange();
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
    return { ...raw, keyIds, state: this.state, keyErrors: this.keyErrors, trust: this.trust() };
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
      this.held = false;
      this.roomOn = null;
      this.auth = null;
      this.safety = new SafetyRound();
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

  /** Our `e2ee_state`: state, public key, the MAC of our entry, the safety round's fields. */
  async announce() {
    const msg = { type: "e2ee_state", state: this.state };
    if (this.identity && this.state !== "unable") {
      msg.public_key = this.identity.publicKey;
      if (this.auth) msg.auth = this.auth;
      const { commit, reveal } = this.safety.fields();
      if (commit) msg.commit = commit;
      if (reveal) msg.reveal = reveal;
    }
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
