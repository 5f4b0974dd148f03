/**
 * The live participant list (from `participants`): names as text, role, kind (console,
 * phone), microphone, camera, screen and hand marks, and the raised hands in the order
 * they went up. For leaders each other participant has "ask to mute" (a request the
 * person accepts or declines), "mute", "lower hand", "remove" (with confirmation and
 * the choice to bar them) and, for guests, "make co-leader"; above the list, "mute
 * everyone".
 *
 * Everyone who can hear is seen: every member the server lists is shown, whatever its
 * kind, and one whose connection dropped (`away`) stays listed, marked, until it comes
 * back or the server lets it go. A leader can still remove it.
 *
 * Two people with the same name are told apart: the second "Anna" reads "Anna (2)",
 * everywhere in this page (list, tiles, lobby), for as long as both are here.
 */

import { $, el, confirmDialog, notice } from "./dom.js";
import { t } from "./i18n.js";

/**
 * Numbers for people who share a name, kept stable while they stay: the first "Anna"
 * is plain "Anna", the next one "Anna (2)", also when the first leaves meanwhile.
 * Fed with the participants and (for leaders) the lobby.
 */
export class SameNames {
  constructor() {
    this.sources = new Map(); // "room" | "lobby" -> [{id, name}]
    this.numbers = new Map(); // id -> 1, 2, …
  }

  set(source, people) {
    this.sources.set(source, people.map((p) => ({ id: p.id, name: p.name })));
    const everyone = new Map();
    for (const list of this.sources.values()) for (const p of list) everyone.set(p.id, p);
    for (const id of [...this.numbers.keys()]) if (!everyone.has(id)) this.numbers.delete(id);
    const taken = new Map(); // folded name -> Set of numbers in use
    for (const [id, n] of this.numbers) {
      const key = fold(everyone.get(id).name);
      if (!taken.has(key)) taken.set(key, new Set());
      taken.get(key).add(n);
    }
    for (const p of everyone.values()) {
      if (this.numbers.has(p.id)) continue;
      const key = fold(p.name);
      if (!taken.has(key)) taken.set(key, new Set());
      const used = taken.get(key);
      let n = 1;
      while (used.has(n)) n += 1;
      used.add(n);
      this.numbers.set(p.id, n);
    }
  }

  /** "Anna", or "Anna (2)" for the second person called Anna. */
  label(p) {
    const n = this.numbers.get(p.id);
    return n && n > 1 ? `${p.name} (${n})` : p.name;
  }
}

/** Names compare the way a person reads them: case and width do not matter. */
function fold(name) {
  return String(name || "")
    .normalize("NFKC")
    .toLowerCase()
    .replace(/\s+/g, " ")
    .trim();
}

/** One per page: the list, the tiles and the lobby all number alike. */
export const sameNames = new SameNames();

/** The raised hands, first raised first (`hand_seq` from the server). */
export function handsInOrder(participants) {
  const raised = participants.filter((p) => p.hand);
  const order = (p) => (Number.isInteger(p.hand_seq) ? p.hand_seq : Number.MAX_SAFE_INTEGER);
  return raised.map((p, i) => [p, i]).sort((a, b) => order(a[0]) - order(b[0]) || a[1] - b[1]).map(([p]) => p);
}

export class PeopleList {
  constructor(sig) {
    this.sig = sig;
    this.list = [];
    this.myId = null;
    this.room = null;
    this.isLeader = false;
    this.onLowerHand = null; // (id) => void
    $("mute-all").addEventListener("click", async () => {
      if (await confirmDialog(t("mute_all_confirm"), t("mute_all"))) {
        this.sig.send({ type: "mute_all", room: this.room });
      }
    });
  }

  update(participants) {
    this.list = participants;
    sameNames.set("room", participants);
    this.render();
  }

  label(p) {
    return sameNames.label(p);
  }

  render() {
    const people = this.list;
    $("people-title").textContent = t("people_title", { n: people.length });
    const hands = handsInOrder(people);
    this.handPlace = new Map(hands.map((p, i) => [p.id, i + 1]));
    $("hands-box").hidden = hands.length === 0;
    $("hands").replaceChildren(...hands.map((p) => this.handItem(p)));
    $("mute-all").hidden = !this.isLeader || !people.some((p) => p.id !== this.myId && p.mic);
    $("people").replaceChildren(...people.map((p) => this.item(p)));
  }

  handItem(p) {
    const mine = p.id === this.myId;
    const item = el("li", { cls: "hand-item", attrs: { "data-participant": p.id } }, [
      el("span", { cls: "person-name", text: mine ? `${this.label(p)} (${t("you")})` : this.label(p) }),
    ]);
    if (this.isLeader && !mine) {
      const lower = el("button", {
        cls: "small",
        text: t("lower_hand"),
        attrs: { type: "button", "aria-label": t("lower_hand_name", { name: this.label(p) }), "data-action": "lower-hand" },
      });
      lower.addEventListener("click", () => this.onLowerHand && this.onLowerHand(p.id));
      item.append(lower);
    }
    return item;
  }

  item(p) {
    const mine = p.id === this.myId;
    const shown = this.label(p);
    const name = el("span", { cls: "person-name", text: mine ? `${shown} (${t("you")})` : shown });
    const marks = el("span", { cls: "marks" });
    const add = (cls, text) => marks.append(el("span", { cls: `mark ${cls}`, text }));
    const kind = kindMark(p);
    if (kind) add(kind[0], kind[1]);
    else if (p.role === "leader") add("role", t("role_leader"));
    else if (p.role === "coleader") add("role", t("role_coleader"));
    if (p.away) add("away", t("away"));
    if (p.hand) add("hand", t("hand_order", { n: this.handPlace.get(p.id) || "" }));
    if (p.mic === false) add("mic-off", t("mic_off_icon"));
    if (p.camera === false && !audioOnly(p)) add("camera-off", t("camera_off_icon"));
    if (p.screen) add("screen", t("share_start"));
    const cls = p.away ? "person away" : "person";
    const row = el("li", { cls, attrs: { "data-participant": p.id, "data-kind": kindOf(p) } }, [
      el("div", { cls: "person-line" }, [name, marks]),
    ]);
    if (this.isLeader && !mine) row.append(this.actions(p));
    return row;
  }

  actions(p) {
    const name = this.label(p);
    const micOff = p.mic === false || !!p.away;
    let ask = null;
    if (kindOf(p) === "browser") {
      // an honest request: the person sees it and decides
      ask = el("button", {
        cls: "small",
        text: t("ask_mute"),
        attrs: { type: "button", "aria-label": t("ask_mute_name", { name }), disabled: micOff, "data-action": "ask-mute" },
      });
      ask.addEventListener("click", () => {
        if (this.sig.send({ type: "mute_request", room: this.room, id: p.id, ask: true })) {
          notice(t("mute_asked_sent", { name }));
        }
      });
    }
    const mute = el("button", {
      cls: "small",
      text: t("force_mute"),
      attrs: { type: "button", "aria-label": t("force_mute_name", { name }), disabled: micOff, "data-action": "mute" },
    });
    mute.addEventListener("click", () => this.sig.send({ type: "mute_request", room: this.room, id: p.id, ask: false }));
    let lower = null;
    if (p.hand) {
      lower = el("button", {
        cls: "small",
        text: t("lower_hand"),
        attrs: { type: "button", "aria-label": t("lower_hand_name", { name }), "data-action": "lower-hand" },
      });
      lower.addEventListener("click", () => this.onLowerHand && this.onLowerHand(p.id));
    }
    const remove = el("button", {
      cls: "small danger",
      text: t("remove"),
      attrs: { type: "button", "aria-label": t("remove_name", { name }), "data-action": "remove" },
    });
    remove.addEventListener("click", async () => {
      const answer = await confirmDialog(t("remove_confirm", { name }), t("remove"), { option: t("remove_bar", { name }) });
      if (answer) this.sig.send({ type: "remove", room: this.room, id: p.id, bar: answer === "option" });
    });
    let promote = null;
    if (p.role === "guest") {
      promote = el("button", {
        cls: "small",
        text: t("promote"),
        attrs: { type: "button", "aria-label": t("promote_name", { name }), "data-action": "promote" },
      });
      promote.addEventListener("click", async () => {
        if (await confirmDialog(t("promote_confirm", { name }), t("promote"))) {
          this.sig.send({ type: "promote", room: this.room, id: p.id });
        }
      });
    }
    return el("div", { cls: "person-actions" }, [ask, mute, lower, promote, remove]);
  }
}

/** `browser`, `console` or `phone` (older servers marked phones by role only). */
export function kindOf(p) {
  if (p.kind === "console" || p.kind === "phone") return p.kind;
  return p.role === "phone" ? "phone" : "browser";
}

/** Consoles and phones never send a camera: their tile is a voice only. */
export function audioOnly(p) {
  return kindOf(p) !== "browser";
}

/**
 * The mark that says how someone is here, or null for a browser: a console is a
 * leader's ear in the room ("Leader (console)"), a phone is a phone. Consoles carry the
 * role in this label, so they get no second "leader" mark.
 */
export function kindMark(p) {
  const kind = kindOf(p);
  if (kind === "console") {
    const leads = p.role === "leader" || p.role === "coleader";
    return ["kind console", t(leads ? "kind_console_leader" : "kind_console")];
  }
  if (kind === "phone") return ["kind phone", t("role_phone")];
  return null;
}
