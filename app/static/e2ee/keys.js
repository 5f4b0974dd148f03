/**
 * Key management on the page: our ECDH identity, pairwise wrap keys, our media key.
 *
 * Every participant has a P-256 ECDH key pair for the session (its public key travels
 * in `e2ee_state`) and its own random media key. Our media key reaches each other
 * participant wrapped with AES-GCM under a key derived per ordered pair:
 *   ECDH(ours, theirs) → HKDF-SHA256(info = "kreis-e2ee-v1 wrap" | from | to)
 * so the server, which relays the `e2ee_key` payload, only ever sees ciphertext, and a
 * payload cannot be replayed to another participant or in the other direction. When both
 * ends hold the room secret (trust.js), the HKDF salt is derived from it: a public key the
 * server swapped in gets nothing it could open even if the MAC check were skipped.
 */

import { MEDIA_KEY_BYTES, nextKeyId, ratchetMediaKey } from "./frame.js";

const enc = new TextEncoder();
const WRAP_VERSION = 1;

export function toBase64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function wrapInfo(fromId, toId) {
  return enc.encode(`kreis-e2ee-v1 wrap\u0000${fromId}\u0000${toId}`);
}

/** Our ECDH key pair for this session; the private key cannot be exported. */
export async function createIdentity() {
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, [
    "deriveBits",
  ]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: toBase64(raw) };
}

/**
 * The AES-GCM key that protects media keys sent from `fromId` to `toId`. Both ends derive
 * the same key: the sender from (its private, receiver's public), the receiver the other way.
 */
export async function deriveWrapKey(privateKey, peerPublicKeyB64, fromId, toId, salt = null) {
  const peerKey = await crypto.subtle.importKey(
    "raw",
    fromBase64(peerPublicKeyB64),
    { name: "ECDH", namedCurve: "P-256" },
    false,
    [],
  );
  const shared = await crypto.subtle.deriveBits({ name: "ECDH", public: peerKey }, privateKey, 256);
  const hkdf = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: salt ?? new Uint8Array(0), info: wrapInfo(fromId, toId) },
    hkdf,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** `e2ee_key` payload: base64(iv12 | AES-GCM(version u8 | key id u32 BE | media key 32)). */
export async function wrapMediaKey(wrapKey, fromId, toId, keyId, raw) {
  const plain = new Uint8Array(1 + 4 + MEDIA_KEY_BYTES);
  plain[0] = WRAP_VERSION;
  new DataView(plain.buffer).setUint32(1, keyId >>> 0, false);
  plain.set(raw, 5);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: wrapInfo(fromId, toId) },
    wrapKey,
    plain,
  );
  const out = new Uint8Array(12 + ct.byteLength);
  out.set(iv, 0);
  out.set(new Uint8Array(ct), 12);
  return toBase64(out);
}

/** Opens an `e2ee_key` payload; throws when it was not made for this pair. */
export async function unwrapMediaKey(wrapKey, fromId, toId, payloadB64) {
  const data = fromBase64(payloadB64);
  if (data.byteLength < 12 + 16 + 5 + MEDIA_KEY_BYTES) throw new Error("short key payload");
  const plain = new Uint8Array(
    await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: data.subarray(0, 12), additionalData: wrapInfo(fromId, toId) },
      wrapKey,
      data.subarray(12),
    ),
  );
  if (plain[0] !== WRAP_VERSION || plain.byteLength !== 5 + MEDIA_KEY_BYTES) {
    throw new Error("unknown key payload version");
  }
  const keyId = new DataView(plain.buffer).getUint32(1, false);
  return { keyId, raw: plain.slice(5) };
}

/** Our own media key: a fresh random one (someone left) or the next ratchet step (join). */
export class OwnMediaKey {
  constructor() {
    this.keyId = crypto.getRandomValues(new Uint32Array(1))[0] >>> 8;
    this.raw = null;
  }

  /** A new random key under the next key id; nobody can derive it from an older one. */
  renew() {
    this.raw = crypto.getRandomValues(new Uint8Array(MEDIA_KEY_BYTES));
    this.keyId = nextKeyId(this.keyId);
    return { keyId: this.keyId, raw: this.raw };
  }

  /** The next ratchet step: holders of the current key follow, newcomers cannot go back. */
  async ratchet() {
    this.raw = await ratchetMediaKey(this.raw);
    this.keyId = nextKeyId(this.keyId);
    return { keyId: this.keyId, raw: this.raw };
  }

  forget() {
    this.raw = null;
  }
}
