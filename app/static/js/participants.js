/**
 * The live participant list (from `participants`): names as text, role, microphone,
 * camera, screen and hand marks. For leaders each other participant has "mute",
 * "remove" (with confirmation) and, for guests, "make co-leader" (with confirmation).
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
    const people = this.list.filter((p) => p.kind !== "console" || p.id === this.myId);
    $("people-title").textContent = t("people_title", { n: people.length });
    const items = people.map((p) => this.item(p));
    $("people").replaceChildren(...items);
  }

  item(p) {
    const mine = p.id === this.myId;
    const name = el("span", { cls: "person-name", text: mine ? `${p.name} (${t("you")})` : p.name });
    const marks = el("span", { cls: "marks" });
    const add = (cls, text) => marks.append(el("span", { cls: `mark ${cls}`, text }));
    if (p.role === "leader") add("role", t("role_leader"));
    if (p.role === "coleader") add("role", t("role_coleader"));
    if (p.kind === "phone" || p.role === "phone") add("role", t("role_phone"));
    if (p.hand) add("hand", t("hand_icon"));
    if (p.mic === false) add("mic-off", t("mic_off_icon"));
    if (p.camera === false && p.kind !== "phone") add("camera-off", t("camera_off_icon"));
    if (p.screen) add("screen", t("share_start"));
    const row = el("li", { cls: "person", attrs: { "data-participant": p.id } }, [
      el("div", { cls: "person-line" }, [name, marks]),
    ]);
    if (this.isLeader && !mine) row.append(this.actions(p));
    return row;
  }

  actions(p) {
    const mute = el("button", {
      cls: "small",
      text: t("ask_mute"),
      attrs: { type: "button", "aria-label": t("ask_mute_name", { name: p.name }), disabled: p.mic === false },
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
