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
 *
 * This module holds the engine's state and switching (on, off, held, required, the key
 * schedule: renew on a leave, ratchet on a join); members.js the other members (who is
 * verified, who gets our key, whose key we take); frameworker.js the page's side of the
 * frame worker (worker.js); trust.js and round.js the room secret and the safety number.
 */

import { OwnMediaKey, createIdentity } from "./keys.js";
import { FrameWorker } from "./frameworker.js";
import { Members } from "./members.js";
import { SafetyRound } from "./round.js";
import { memberTag, roomKeys } from "./trust.js";
import { preferE2eeCodecs, supported } from "./support.js";

export { preferE2eeCodecs, supported };

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
    this.frames = new FrameWorker({
      legacy: options.legacy ?? "auto",
      graceMs: options.graceMs ?? 5000,
    });
    this.isSupported = this.frames.isSupported;

    /** "off" | "on" | "unable" — what we announce in `e2ee_state`. */
    this.state = this.isSupported ? "off" : "unable";
    this.wanted = false;
    this.identity = null;
    this.ownKey = new OwnMediaKey();
    /** The other members: verification, modes, key distribution (members.js). */
    this.members = new Members(this);
    this.lastList = [];
    this.currentSas = null;
    /** Bumped by enable/disable: a pending mode switch only completes if still current. */
    this.modeToken = 0;
    /** Bumped whenever the send key changes: a delayed key switch only runs if still current. */
    this.keyToken = 0;
    this.serial = Promise.resolve();
    // The worker starts closed (drops every frame we send); by hand the engine starts clear.
    if (!this.followRoom && !this.required) this.post({ type: "setEncrypt", on: false });
  }

  // --- feature detection and peer connection setup -----------------------------------

  supported() {
    return this.isSupported;
  }

  /** Adds what the legacy path needs (`encodedInsertableStreams`) to an RTCConfiguration. */
  rtcConfiguration(config = {}) {
    return this.frames.rtcConfiguration(config);
  }

  attachSender(sender, kind) {
    return this.frames.attachSender(sender, kind);
  }

  /** Maps a receiver to its publisher; call again when a renegotiation remaps it. */
  attachReceiver(receiver, participantId, kind) {
    return this.frames.attachReceiver(receiver, participantId, kind);
  }

  /**
   * The room secret can arrive late: the page that starts a room makes it then, and a
   * page opened without the fragment gets it when the person pastes the full link.
   */
  async setRoomSecret(secret, required = false) {
    // Without a secret every listed key got ours, verified or not: all of them must lose it.
    const unverifiedHolders = this.secret === null && this.ownKey.raw !== null;
    await this.run(async () => {
      this.secret = secret;
      this.roomKeys = null;
      this.required = this.required || Boolean(required);
      this.members.forgetVerification();
      await this.ensureRoomKeys();
    });
    // Already in the room: our entry gets its MAC, the others are checked again (and
    // whoever verifies now gets our key, as a newcomer would).
    if (this.selfId !== null && this.lastList.length) await this.setParticipants(this.lastList);
    if (unverifiedHolders) {
      await this.run(async () => {
        if (this.ownKey.raw === null) return;
        const key = this.ownKey.renew();
        this.members.resendAll();
        await this.members.distribute();
        this.switchSendKeyLater(key);
      });
    }
    this.onTrustChange();
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
      await this.members.takePending();
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
      this.members.resendAll();
      // Hand the new key out before sending with it, as after a leave: a receiver that
      // got a frame under a key id it lacks would try a ratchet of its old key and drop
      // the frame (bad tag). Meanwhile the worker drops our frames: never sent in clear.
      await this.members.distribute();
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
        // A resume: the others forgot our key while we were away. A fresh one, to all,
        // used at once: our media restarts on a new up connection that is not even
        // negotiated yet, so the key is on its way well before the first frame, and the
        // encoder's first keyframe is one the others can decrypt.
        await this.run(async () => {
          if (this.ownKey.raw === null) return;
          const key = this.ownKey.renew();
          this.members.resendAll();
          this.keyToken++;
          this.post({ type: "setSendKey", keyId: key.keyId, raw: key.raw });
          await this.members.distribute();
        });
        break;
      case "room_state":
        if (this.followRoom && msg.settings) await this.followSetting(msg.settings.e2ee);
        break;
      case "participants":
        await this.setParticipants(msg.participants ?? []);
        break;
      case "e2ee_key":
        await this.run(() => this.members.gotKey(msg.from, msg.payload));
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
    for (const [id, peer] of this.members.peers) {
      this.post({ type: "setMode", participantId: id, mode: this.effectiveMode(peer) });
    }
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
      const { joined, left, trustChanged } = await this.members.update(list, (entry) =>
        this.authenticateSelf(entry),
      );
      if (this.ownKey.raw !== null) {
        if (left) {
          // Whoever left holds our key: a fresh one, sent to everyone, used after the delay.
          const key = this.ownKey.renew();
          this.members.resendAll();
          await this.members.distribute();
          this.switchSendKeyLater(key);
        } else if (joined) {
          // A newcomer must not read what was said before: ratchet, the others follow.
          const key = await this.ownKey.ratchet();
          this.keyToken++;
          this.post({ type: "setSendKey", keyId: key.keyId, raw: key.raw });
          await this.members.distribute();
        } else {
          await this.members.distribute();
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

  // --- what the page shows -------------------------------------------------------------

  /** The safety number {digits, groups} once every member's reveal checks out, else null. */
  sas() {
    return this.currentSas;
  }

  /** What the page shows about trust: verified members, problems, held, required. */
  trust() {
    return {
      hasSecret: this.secret !== null,
      required: this.required,
      held: this.held,
      members: this.members.list(),
      problems: [...this.safety.problems],
      // rounds of this membership abandoned after our reveal; true: no number for it
      abandoned: this.safety.abandoned,
      gaveUp: this.safety.gaveUp,
    };
  }

  async updateSas() {
    if (!this.identity || !this.selfId) return;
    const others = this.lastList.filter((e) => e && e.id !== this.selfId);
    const problemsBefore = `${this.safety.problems.join()}/${this.safety.gaveUp}`;
    if (await this.safety.update(this.selfId, this.identity.publicKey, others)) await this.announce();
    const next = this.safety.sas;
    const changed = JSON.stringify(next) !== JSON.stringify(this.currentSas);
    this.currentSas = next;
    if (changed) this.onSasChange(next);
    if (problemsBefore !== `${this.safety.problems.join()}/${this.safety.gaveUp}`) this.onTrustChange();
  }

  /** Frame counters from the worker: {encrypted, decrypted, dropped, keyIds, ...}. */
  async stats() {
    const raw = await this.frames.stats();
    if (raw === null) {
      return { state: this.state, encrypted: 0, decrypted: 0, dropped: 0, keyIds: {} };
    }
    const keyIds = { self: raw.sendKeyId };
    for (const [id, s] of Object.entries(raw.perParticipant)) keyIds[id] = s.keyId;
    const keyErrors = this.members.keyErrors;
    return { ...raw, keyIds, state: this.state, keyErrors, trust: this.trust() };
  }

  /** Forgets every key, peer and the SAS (the meeting ended for us); the identity stays. */
  async reset() {
    this.wanted = false;
    this.modeToken++;
    this.keyToken++;
    await this.run(async () => {
      this.post({ type: "reset" });
      this.ownKey.forget();
      this.members.clear();
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
    this.frames.close();
  }

  // --- internals -----------------------------------------------------------------------

  run(fn) {
    const result = this.serial.then(fn);
    this.serial = result.catch(() => {});
    return result;
  }

  post(msg) {
    this.frames.post(msg);
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
