/**
 * What E2EE trusts instead of the server: the room secret and the safety-number round.
 *
 * The room secret (32 random bytes) lives only in the invite link's fragment,
 * `#s=<base64url>[&e2ee=1]`; browsers never send a fragment to the server. From it:
 *   - an HMAC key that authenticates each membership entry (id, kind, name, public key):
 *     an entry the server made up, or whose public key it swapped, does not verify;
 *   - a salt for the pairwise key wrapping: without the secret no wrapped media key opens.
 *
 * Safety numbers use commit-then-reveal. For one membership (the ids and public keys a page
 * sees, digested as the "epoch"), every page commits to a fresh random nonce and reveals it
 * only once it holds everyone's commitment for that epoch. The numbers hash the epoch and
 * every nonce, so a server that shows two people different memberships must fix its inputs
 * before it learns the honest nonces: one try per visible change, no offline grinding.
 */

const enc = new TextEncoder();

export const SAS_GROUPS = 5; // 5 groups of 3 digits: 10^15 ≈ 2^49.8

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(text) {
  const s = atob(String(text).replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A new room secret, base64url (43 characters). */
export function newRoomSecret() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** {secret: base64url|null, required: bool} from a location hash such as "#s=…&e2ee=1". */
export function readFragment(hash) {
  const params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
  const s = params.get("s");
  let secret = null;
  try {
    if (s && fromB64url(s).byteLength === 32) secret = s;
  } catch {
    secret = null;
  }
  return { secret, required: params.get("e2ee") === "1" };
}

/** The fragment for a link: "#s=…" plus "&e2ee=1" when the link must never go clear. */
export function fragmentFor(secret, required = false) {
  return `#s=${secret}${required ? "&e2ee=1" : ""}`;
}

async function hkdf(ikm, info, bits) {
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const out = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: enc.encode(info) },
    base,
    bits,
  );
  return new Uint8Array(out);
}

/** The keys a room secret gives: {authKey (HMAC), wrapSalt (32 bytes)}. */
export async function roomKeys(secret) {
  const raw = fromB64url(secret);
  const authBytes = await hkdf(raw, "kreis-e2ee-v2 member auth", 256);
  const authKey = await crypto.subtle.importKey(
    "raw",
    authBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  return { authKey, wrapSalt: await hkdf(raw, "kreis-e2ee-v2 wrap salt", 256) };
}

function entryBytes(entry) {
  const f = (v) => String(v ?? "");
  return enc.encode(
    `kreis-e2ee-v2 member\u0000${f(entry.id)}\u0000${f(entry.kind)}\u0000${f(entry.name)}\u0000${f(entry.public_key)}`,
  );
}

/** The MAC of a membership entry {id, kind, name, public_key}, base64url. */
export async function memberTag(authKey, entry) {
  return b64url(new Uint8Array(await crypto.subtle.sign("HMAC", authKey, entryBytes(entry))));
}

/** Whether an entry's `auth` is the MAC of its id, kind, name and public key (constant time). */
export async function verifyMember(authKey, entry) {
  if (typeof entry?.auth !== "string" || typeof entry.public_key !== "string") return false;
  try {
    return await crypto.subtle.verify("HMAC", authKey, fromB64url(entry.auth), entryBytes(entry));
  } catch {
    return false;
  }
}

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(text)));
}

/** The epoch: a digest of the membership, every [id, public key] (ourselves included). */
export async function epochOf(members) {
  const lines = members.map(([id, key]) => `${id} ${key}\n`).sort();
  return b64url((await sha256(`kreis-e2ee-v2 epoch\n${lines.join("")}`)).subarray(0, 16));
}

export function newNonce() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** The hash a commitment carries: binds id, public key and epoch/round to the nonce. */
export async function commitTo(id, publicKey, epochRound, nonce) {
  const text = `kreis-e2ee-v2 commit\u0000${id}\u0000${publicKey}\u0000${epochRound}\u0000${nonce}`;
  return b64url(await sha256(text));
}

/** The safety number of an epoch: {digits: "123 456 789 012 345", groups: [...]}. */
export async function safetyNumber(epoch, reveals) {
  const lines = reveals.map(([id, nonce]) => `${id} ${nonce}\n`).sort();
  const digest = await sha256(`kreis-e2ee-v2 sas\n${epoch}\n${lines.join("")}`);
  let n = 0n;
  for (const b of digest.subarray(0, 8)) n = (n << 8n) | BigInt(b);
  const text = (n % 10n ** BigInt(3 * SAS_GROUPS)).toString().padStart(3 * SAS_GROUPS, "0");
  const groups = text.match(/.{3}/g);
  return { digits: groups.join(" "), groups };
}
