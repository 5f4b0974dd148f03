/**
 * The other members as E2EE sees them: who may get our media key, and whose key we take.
 *
 * One entry per listed participant (the server's `participants` message): its public key,
 * whether its membership entry verifies under the room secret, its mode ("on"/"off") and
 * the pairwise wrap keys. From each new list it works out what the engine must do with
 * its own key: someone left or lost their proof (renew: a fresh random key), someone got
 * our key for the first time (ratchet: a newcomer cannot read what was said before), or
 * nothing. It sends our key to whoever lacks it and opens the keys the others send us.
 *
 * It reads, from the engine that owns it: `selfId`, `secret`, `roomKeys`, `identity`,
 * `ownKey`, `post()` (the frame worker), `sendSignal()` and `requestKeyframe()`.
 */

import { deriveWrapKey, unwrapMediaKey, wrapMediaKey } from "./keys.js";
import { verifyMember } from "./trust.js";

/** Explicit keys are re-sent when a peer would otherwise have to ratchet this far. */
const RESEND_AFTER_RATCHETS = 4;
const MAX_PENDING_KEYS = 4;

export class Members {
  constructor(engine) {
    this.engine = engine;
    /** id → {publicKey, mode, verified, checked, wrapOut, wrapIn, sentKeyId, hadKey} */
    this.peers = new Map();
    /** id → [payload]: keys that overtook the list entry carrying the sender's public key */
    this.pendingKeys = new Map();
    this.keyErrors = 0;
  }

  /** Whether a peer may get our key and may give us theirs. */
  trusted(peer) {
    return Boolean(peer.publicKey) && (this.engine.secret === null || peer.verified === true);
  }

  wrapSalt(peer) {
    const e = this.engine;
    return e.secret !== null && peer.verified === true ? e.roomKeys.wrapSalt : null;
  }

  /** Every verification is redone (the room secret changed). */
  forgetVerification() {
    for (const peer of this.peers.values()) {
      peer.checked = null;
      peer.verified = null;
    }
  }

  /** Every peer gets our next key afresh (after `ownKey.renew()`). */
  resendAll() {
    for (const peer of this.peers.values()) peer.sentKeyId = null;
  }

  clear() {
    this.peers.clear();
    this.pendingKeys.clear();
  }

  /**
   * Takes the room's participant list. `onSelf(entry)` is called for our own entry.
   * Returns {joined, left, trustChanged}: whether someone got trusted for the first time,
   * whether someone who held our key left (or lost their proof), and whether who is
   * listed or verified changed.
   */
  async update(list, onSelf) {
    const e = this.engine;
    const seen = new Set();
    let joined = false;
    let left = false;
    let trustChanged = false;
    for (const entry of list) {
      if (!entry) continue;
      if (entry.id === e.selfId) {
        await onSelf(entry);
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
          e.post({ type: "removeParticipant", participantId: entry.id });
          if (wasTrusted) left = true;
        }
        peer.publicKey = publicKey;
        peer.wrapOut = null;
        peer.wrapIn = null;
        peer.sentKeyId = null;
        peer.hadKey = false;
      }
      if (e.roomKeys !== null) {
        const checked = `${entry.auth}|${entry.kind}|${entry.name}|${publicKey}`;
        if (checked !== peer.checked) {
          peer.checked = checked;
          const verified = publicKey !== null && (await verifyMember(e.roomKeys.authKey, entry));
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
        e.post({ type: "setMode", participantId: entry.id, mode: e.effectiveMode(peer) });
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
        e.post({ type: "removeParticipant", participantId: id });
        if (this.trusted(peer)) left = true;
        trustChanged = true;
      }
    }
    return { joined, left, trustChanged };
  }

  /** Opens the keys that waited for their sender's (verified) entry. */
  async takePending() {
    for (const [id, payloads] of [...this.pendingKeys]) {
      const peer = this.peers.get(id);
      if (!peer || !this.trusted(peer)) continue;
      this.pendingKeys.delete(id);
      for (const payload of payloads) await this.gotKey(id, payload);
    }
  }

  /** Sends our current media key to each peer that lacks it (or lags many ratchet steps). */
  async distribute() {
    const e = this.engine;
    if (e.ownKey.raw === null || e.selfId === null || e.identity === null) return;
    const { keyId, raw } = e.ownKey;
    for (const [id, peer] of this.peers) {
      if (!this.trusted(peer)) continue; // unverified: no key, ever
      const behind = peer.sentKeyId === null ? Infinity : (keyId - peer.sentKeyId) >>> 0;
      if (behind < RESEND_AFTER_RATCHETS) continue;
      try {
        peer.wrapOut ??= await deriveWrapKey(
          e.identity.privateKey,
          peer.publicKey,
          e.selfId,
          id,
          this.wrapSalt(peer),
        );
        const payload = await wrapMediaKey(peer.wrapOut, e.selfId, id, keyId, raw);
        peer.sentKeyId = keyId;
        e.sendSignal({ type: "e2ee_key", to: id, payload });
        performance.mark("kreis:e2ee-key-out");
      } catch {
        this.keyErrors++; // a broken public key: that peer cannot get our media
      }
    }
  }

  async gotKey(from, payload) {
    const e = this.engine;
    if (typeof from !== "string" || typeof payload !== "string") return;
    const peer = this.peers.get(from);
    if (!peer || !this.trusted(peer) || e.identity === null || e.selfId === null) {
      // The key can overtake the participant list that carries the sender's public key.
      const pending = this.pendingKeys.get(from) ?? [];
      if (pending.length < MAX_PENDING_KEYS) pending.push(payload);
      this.pendingKeys.set(from, pending);
      return;
    }
    try {
      peer.wrapIn ??= await deriveWrapKey(
        e.identity.privateKey,
        peer.publicKey,
        from,
        e.selfId,
        this.wrapSalt(peer),
      );
      const { keyId, raw } = await unwrapMediaKey(peer.wrapIn, from, e.selfId, payload);
      e.post({ type: "setKey", participantId: from, keyId, raw });
      performance.mark("kreis:e2ee-key-in");
      // Frames from this publisher may have been dropped while the key was on its way;
      // a keyframe lets its video start again at once (the SFU throttles these).
      peer.hadKey = true;
      e.requestKeyframe(from);
    } catch {
      this.keyErrors++;
    }
  }

  /** What the page shows about each member with a public key: verified or not. */
  list() {
    const members = [];
    for (const [id, peer] of this.peers) {
      if (!peer.publicKey) continue;
      members.push({ id, verified: this.engine.secret === null ? null : peer.verified === true });
    }
    return members;
  }
}
