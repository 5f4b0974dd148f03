/**
 * The Kreis E2EE frame format and the key derivations both sides must agree on.
 *
 * Pure functions over WebCrypto, shared by the frame worker (worker.js) and the key
 * management on the page (keys.js), so that the sender, the receiver and the ratchet
 * can never drift apart. See README.md for the format in prose.
 *
 *   frame  = clear_prefix | AES-GCM(ciphertext | tag16) | trailer
 *   trailer = key_id (u32 BE) | counter (u32 BE) | magic "KRE" 0x01
 *   IV     = salt (96 bit, derived from the media key) XOR counter (last 4 bytes)
 *   AAD    = clear_prefix | trailer
 */

export const MAGIC = new Uint8Array([0x4b, 0x52, 0x45, 0x01]); // "KRE" + version 1
export const TRAILER_BYTES = 12;
export const TAG_BYTES = 16;
export const MEDIA_KEY_BYTES = 32;
/** How many ratchet steps a receiver derives on its own when it sees a newer key id. */
export const MAX_RATCHET_STEPS = 8;

const enc = new TextEncoder();
const INFO_FRAME_KEY = enc.encode("kreis-e2ee-v1 frame key");
const INFO_FRAME_SALT = enc.encode("kreis-e2ee-v1 frame salt");
const INFO_RATCHET = enc.encode("kreis-e2ee-v1 ratchet");

/**
 * Bytes that stay in clear so that RTP packetizers and depacketizers keep working.
 * VP8: the payload header (10 bytes for a keyframe, 3 for a delta frame; the P bit of
 * the frame tag says which). Opus: the TOC byte. Returns -1 for codecs we cannot handle
 * safely (H.264 would need NAL parsing), so the caller drops instead of leaking.
 */
export function clearPrefixLength(kind, data, mimeType) {
  if (kind === "audio") {
    if (mimeType && !/opus/i.test(mimeType)) return -1;
    return Math.min(1, data.byteLength);
  }
  if (mimeType && !/vp8/i.test(mimeType)) return -1;
  if (data.byteLength === 0) return 0;
  const keyframe = (data[0] & 0x01) === 0;
  return Math.min(keyframe ? 10 : 3, data.byteLength);
}

/** True when the frame ends with our trailer magic (it claims to be encrypted). */
export function hasMagic(data) {
  const n = data.byteLength;
  if (n < TRAILER_BYTES + TAG_BYTES) return false;
  for (let i = 0; i < MAGIC.length; i++) {
    if (data[n - MAGIC.length + i] !== MAGIC[i]) return false;
  }
  return true;
}

/** Reads key id and counter from an encrypted frame's trailer. */
export function readTrailer(data) {
  const n = data.byteLength;
  const view = new DataView(data.buffer, data.byteOffset, n);
  return {
    keyId: view.getUint32(n - TRAILER_BYTES, false),
    counter: view.getUint32(n - TRAILER_BYTES + 4, false),
  };
}

function makeTrailer(keyId, counter) {
  const t = new Uint8Array(TRAILER_BYTES);
  const view = new DataView(t.buffer);
  view.setUint32(0, keyId >>> 0, false);
  view.setUint32(4, counter >>> 0, false);
  t.set(MAGIC, 8);
  return t;
}

function makeIv(salt, counter) {
  const iv = new Uint8Array(salt);
  const c = counter >>> 0;
  iv[8] ^= (c >>> 24) & 0xff;
  iv[9] ^= (c >>> 16) & 0xff;
  iv[10] ^= (c >>> 8) & 0xff;
  iv[11] ^= c & 0xff;
  return iv;
}

function concat(...parts) {
  let len = 0;
  for (const p of parts) len += p.byteLength;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

async function hkdfBits(ikm, info, bits) {
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const out = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info },
    base,
    bits,
  );
  return new Uint8Array(out);
}

/**
 * Turns a participant's raw media key (32 random bytes) into what the frame code
 * uses: an AES-256-GCM key and a 96-bit salt, both derived with HKDF-SHA256.
 */
export async function frameKeyFromMediaKey(raw) {
  const keyBytes = await hkdfBits(raw, INFO_FRAME_KEY, 256);
  const salt = await hkdfBits(raw, INFO_FRAME_SALT, 96);
  const key = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return { key, salt };
}

/** The next media key in the ratchet: whoever holds key n can compute key n+1, not back. */
export async function ratchetMediaKey(raw) {
  return hkdfBits(raw, INFO_RATCHET, MEDIA_KEY_BYTES * 8);
}

/** Next key id (u32, wrapping). */
export function nextKeyId(keyId) {
  return (keyId + 1) >>> 0;
}

/** Encrypts one frame payload. `frameKey` is {key, salt}. */
export async function encryptFrame(frameKey, keyId, counter, data, prefixLen) {
  const prefix = data.subarray(0, prefixLen);
  const body = data.subarray(prefixLen);
  const trailer = makeTrailer(keyId, counter);
  const aad = concat(prefix, trailer);
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: makeIv(frameKey.salt, counter), additionalData: aad, tagLength: 128 },
    frameKey.key,
    body,
  );
  return concat(prefix, new Uint8Array(ct), trailer);
}

/**
 * Decrypts one frame. `prefixLen` must be computed from the (clear) start of the
 * received frame exactly as the sender did. Throws when the tag does not verify.
 */
export async function decryptFrame(frameKey, data, prefixLen) {
  const n = data.byteLength;
  const trailer = data.subarray(n - TRAILER_BYTES);
  const { counter } = readTrailer(data);
  const prefix = data.subarray(0, prefixLen);
  const body = data.subarray(prefixLen, n - TRAILER_BYTES);
  if (body.byteLength < TAG_BYTES) throw new Error("short frame");
  const aad = concat(prefix, trailer);
  const pt = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: makeIv(frameKey.salt, counter), additionalData: aad, tagLength: 128 },
    frameKey.key,
    body,
  );
  return concat(prefix, new Uint8Array(pt));
}
