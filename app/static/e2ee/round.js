/**
 * The safety-number round: commit-then-reveal over one membership.
 *
 * A commitment is `<epoch>.<round>.<hash>`, hash = trust.js `commitTo`. Rules, per page:
 *   - a new membership (epoch) starts a new round, numbered one above every round seen;
 *   - a commitment with a higher round for our epoch moves us to that round (fresh nonce),
 *     so all pages converge on the highest round;
 *   - we reveal our nonce only when every other member shows a commitment for our epoch
 *     and round; the commitments we saw then are frozen;
 *   - a frozen commitment that changes afterwards, or a reveal that does not match its
 *     commitment, is a problem: honest pages never do either, only a server that lies;
 *   - a round abandoned after we revealed (a higher round appeared) gave the server one
 *     try at two views with matching numbers. Honest pages abandon one only when their
 *     round numbers race; after MAX_ABANDONED of them for one membership we stop taking
 *     part (no number, a visible problem) until the membership changes.
 * The safety number exists once every reveal is in and checks out.
 */

import { commitTo, epochOf, newNonce, safetyNumber } from "./trust.js";

/** Rounds abandoned after our reveal, per membership, before we stop taking part. */
export const MAX_ABANDONED = 3;

function parse(commit) {
  if (typeof commit !== "string") return null;
  const parts = commit.split(".");
  if (parts.length !== 3) return null;
  const round = Number(parts[1]);
  if (!Number.isSafeInteger(round) || round < 0) return null;
  return { epoch: parts[0], round, commit };
}

export class SafetyRound {
  constructor() {
    this.epoch = null;
    this.round = 0;
    this.maxSeen = 0;
    this.nonce = null;
    this.commit = null;
    this.revealed = false;
    this.frozen = new Map();
    /** {digits, groups} once complete, else null. */
    this.sas = null;
    /** ids whose commitment or reveal did not hold. */
    this.problems = [];
    /** Rounds of this membership abandoned after our reveal. */
    this.abandoned = 0;
  }

  /** True once this membership's rounds were abandoned too often: no number for it. */
  get gaveUp() {
    return this.abandoned >= MAX_ABANDONED;
  }

  /** What we announce in `e2ee_state`: {commit, reveal}. */
  fields() {
    return { commit: this.commit, reveal: this.revealed ? this.nonce : null };
  }

  async restart(selfId, selfKey, round) {
    this.round = round;
    this.maxSeen = Math.max(this.maxSeen, round);
    this.nonce = newNonce();
    const hashed = await commitTo(selfId, selfKey, `${this.epoch}.${round}`, this.nonce);
    this.commit = `${this.epoch}.${round}.${hashed}`;
    this.revealed = false;
    this.frozen = new Map();
    this.sas = null;
    this.problems = [];
  }

  /**
   * Takes the list entries of the other members (with `public_key`, `commit`, `reveal`).
   * Returns true when our own announced fields changed (the caller announces them).
   */
  async update(selfId, selfKey, others) {
    const members = others.filter((e) => typeof e.public_key === "string" && e.public_key);
    if (!selfId || !selfKey || members.length === 0) {
      const had = this.commit !== null;
      this.epoch = null;
      this.commit = null;
      this.nonce = null;
      this.revealed = false;
      this.sas = null;
      this.problems = [];
      this.abandoned = 0;
      return had;
    }
    const parsed = members.map((e) => parse(e.commit));
    for (const c of parsed) if (c) this.maxSeen = Math.max(this.maxSeen, c.round);
    const epoch = await epochOf([[selfId, selfKey], ...members.map((e) => [e.id, e.public_key])]);
    let changed = false;
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.abandoned = 0;
      await this.restart(selfId, selfKey, this.maxSeen + 1);
      changed = true;
    }
    const higher = parsed.filter((c) => c && c.epoch === epoch && c.round > this.round);
    if (higher.length && !this.gaveUp) {
      if (this.revealed) this.abandoned += 1;
      if (!this.gaveUp) {
        await this.restart(selfId, selfKey, Math.max(...higher.map((c) => c.round)));
        changed = true;
      }
    }
    if (this.gaveUp) {
      this.sas = null;
      return changed;
    }
    const current = parsed.map((c) => (c && c.epoch === epoch && c.round === this.round ? c.commit : null));
    if (!this.revealed && current.every((c) => c !== null)) {
      this.frozen = new Map(members.map((e, i) => [e.id, current[i]]));
      this.revealed = true;
      changed = true;
    }
    this.sas = null;
    if (!this.revealed) return changed;
    const problems = [];
    const reveals = [[selfId, this.nonce]];
    let complete = true;
    for (let i = 0; i < members.length; i++) {
      const e = members[i];
      const frozen = this.frozen.get(e.id);
      if (current[i] !== null && current[i] !== frozen) {
        problems.push(e.id); // a commitment changed after we revealed
        continue;
      }
      if (current[i] === null || typeof e.reveal !== "string") {
        complete = false;
        continue;
      }
      const expected = await commitTo(e.id, e.public_key, `${epoch}.${this.round}`, e.reveal);
      if (`${epoch}.${this.round}.${expected}` !== frozen) {
        problems.push(e.id);
        continue;
      }
      reveals.push([e.id, e.reveal]);
    }
    this.problems = problems;
    if (complete && problems.length === 0) {
      this.sas = await safetyNumber(`${epoch}.${this.round}`, reveals);
    }
    return changed;
  }
}
