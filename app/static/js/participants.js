/**
 * The live participant list (from `participants`): names as text, role, kind (console,
 * phone), microphone, camera, screen and hand marks. For leaders each other participant
 * has "mute", "remove" (with confirmation) and, for guests, "make co-leader" (with
 * confirmation).
 *
 * Everyone who can hear is seen: every member the server lists is shown, whatever its
 * kind, and one whose connection dropped (`away`) stays listed, marked, until it comes
 * back or the server lets it go. A leader can still remove it.
 */

import { $, el, confirmDialog } from "./dom.js";
import { t } from "./i18n.js";

export class PeopleList {
  constructor(sig) {
    this.sig = sig;
    this.list = [];
    this.myId = null;
    this.room = null;
    this.isLeader = false;
  }

  update(participants) {
    this.list = participants;
    this.render();
  }

  render() {
    const people = this.list;
    $("people-title").textContent = t("people_title", { n: people.length });
    const items = people.map((p) => this.item(p));
    $("people").replaceChildren(...items);
  }

  item(p) {
    const mine = p.id === this.myId;
    const name = el("span", { cls: "person-name", text: mine ? `${p.name} (${t("you")})` : p.name });
    const marks = el("span", { cls: "marks" });
    const add = (cls, text) => marks.append(el("span", { cls: `mark ${cls}`, text }));
    const kind = kindMark(p);
    if (kind) add(kind[0], kind[1]);
    else if (p.role === "leader") add("role", t("role_leader"));
    else if (p.role === "coleader") add("role", t("role_coleader"));
    if (p.away) add("away", t("away"));
    if (p.hand) add("hand", t("hand_icon"));
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
    const mute = el("button", {
      cls: "small",
      text: t("ask_mute"),
      attrs: { type: "button", "aria-label": t("ask_mute_name", { name: p.name }), disabled: p.mic === false || !!p.away },
    });
    mute.addEventListener("click", () => this.sig.send({ type: "mute_request", room: this.room, id: p.id }));
    const remove = el("button", {
      cls: "small danger",
      text: t("remove"),
      attrs: { type: "button", "aria-label": t("remove_name", { name: p.name }) },
    });
    remove.addEventListener("click", async () => {
      if (await confirmDialog(t("remove_confirm", { name: p.name }), t("remove"))) {
        this.sig.send({ type: "remove", room: this.room, id: p.id, bar: false });
      }
    });
    let promote = null;
    if (p.role === "guest") {
      promote = el("button", {
        cls: "small",
        text: t("promote"),
        attrs: { type: "button", "aria-label": t("promote_name", { name: p.name }), "data-action": "promote" },
      });
      promote.addEventListener("click", async () => {
        if (await confirmDialog(t("promote_confirm", { name: p.name }), t("promote"))) {
          this.sig.send({ type: "promote", room: this.room, id: p.id });
        }
      });
    }
    return el("div", { cls: "person-actions" }, [mute, promote, remove]);
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
