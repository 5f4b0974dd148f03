/**
 * The leader's panel in the room: the lobby (a knock rings a chime and shows a notice),
 * Admit / Deny / Admit all, a short message to someone waiting, and the room settings:
 * lobby, lock, end-to-end encryption, phone dial-in (number and PIN, leaders only),
 * password set/clear, end the meeting.
 *
 * Each entrant shows how they come (browser, phone, console): a phone caller cannot be
 * seen, and a leader should know that before letting one in. The invite link from
 * `room_created` is shown with a copy button.
 *
 * Phone callers cannot be end-to-end encrypted: switching E2EE on while someone is on
 * the phone is refused (`phones_present`) until the leader confirms that they will be
 * disconnected; while E2EE is on, the dial-in switch is disabled.
 */

import { $, el, chime, notice, clearNotice, confirmDialog } from "./dom.js";
import { t, onLangChange, errorText } from "./i18n.js";
import { fragmentFor } from "../e2ee/trust.js";
import { sameNames } from "./participants.js";

/** The word for each entrant kind in `lobby_queue`. */
const ENTRANT_KINDS = new Map([
  ["browser", "kind_browser"],
  ["phone", "kind_phone"],
  ["console", "kind_console"],
]);

export class LeaderPanel {
  constructor(sig) {
    this.sig = sig;
    this.room = null;
    this.entrants = [];
    this.settings = {};
    this.dialIn = { pin: null, numbers: [] }; // from room_state, leaders only
    this.lobbyChat = new Map(); // entrant id -> last few lobby messages, either way
    this.onKnock = null; // opens the panel
    this.secret = null; // the room secret for the link's fragment, when this page has it
    this.inviteBase = null; // the server's link, without a fragment
    $("admit-all").addEventListener("click", () => this.send({ type: "admit_all" }));
    $("set-lobby").addEventListener("change", (ev) => this.send({ type: "set_lobby", on: ev.target.checked }));
    $("set-lock").addEventListener("change", (ev) => this.send({ type: "set_lock", locked: ev.target.checked }));
    $("set-e2ee").addEventListener("change", (ev) => {
      this.send({ type: "set_e2ee", on: ev.target.checked, drop_phones: false });
    });
    $("set-dial-in").addEventListener("change", (ev) => this.send({ type: "set_dial_in", on: ev.target.checked }));
    $("password-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = $("new-password");
      if (input.value.length < 4) {
        input.focus();
        return;
      }
      this.send({ type: "set_password", password: input.value });
      input.value = "";
    });
    $("password-clear").addEventListener("click", () => this.send({ type: "set_password", password: null }));
    $("invite-copy").addEventListener("click", () => this.copyInvite());
    $("end-room").addEventListener("click", async () => {
      if (await confirmDialog(t("end_confirm"), t("end_room"))) this.send({ type: "end_room" });
    });
    onLangChange(() => this.render());
  }

  send(msg) {
    return this.sig.send({ ...msg, room: this.room });
  }

  setRoom(room) {
    this.room = room;
    this.entrants = [];
    this.render();
  }

  /** The invite link of a room this leader created (`room_created.url`), shown as text. */
  setInvite(url) {
    let link = null;
    try {
      link = new URL(String(url), location.href);
    } catch (_) {
      link = null;
    }
    const ok = !!link && (link.protocol === "https:" || link.protocol === "http:");
    if (ok) link.hash = "";
    this.inviteBase = ok ? link.href : null;
    this.renderInvite();
  }

  /** The full link: the server's, plus the room secret in the fragment (never sent to it). */
  renderInvite() {
    const base = this.inviteBase;
    $("invite-url").textContent = base ? base + (this.secret ? fragmentFor(this.secret, !!this.settings.e2ee) : "") : "";
    $("invite").hidden = !base;
  }

  async copyInvite() {
    const box = $("invite-url");
    const text = box.textContent;
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
      notice(t("invite_copied"));
    } catch (_) {
      // no clipboard (an insecure page, a refusing browser): select it for the person
      const range = document.createRange();
      range.selectNodeContents(box);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      notice(t("invite_copy_failed"));
    }
  }

  gotLobbyQueue(msg) {
    if (msg.room && this.room && msg.room !== this.room) return;
    const before = new Set(this.entrants.map((e) => e.id));
    this.entrants = msg.entrants || [];
    sameNames.set("lobby", this.entrants); // a second "Anna" waiting reads "Anna (2)"
    this.refused = Number.isInteger(msg.refused) ? msg.refused : 0;
    const present = new Set(this.entrants.map((e) => e.id));
    for (const id of this.lobbyChat.keys()) if (!present.has(id)) this.lobbyChat.delete(id);
    if (!this.entrants.length) clearNotice();
    this.render();
    const newcomers = this.entrants.filter((e) => !before.has(e.id));
    if (msg.knock && newcomers.length) {
      chime();
      notice(t("knock_notice", { name: newcomers.map((e) => sameNames.label(e)).join(", ") }), { seconds: 10 });
      if (this.onKnock) this.onKnock();
    }
  }

  /** A lobby message: from an entrant to the leaders, or from a leader to an entrant. */
  gotLobbyChat(msg) {
    const entrantId = this.entrants.some((e) => e.id === msg.from) ? msg.from : msg.to;
    if (!entrantId) return;
    const lines = this.lobbyChat.get(entrantId) || [];
    lines.push({ name: msg.name || "", text: msg.text || "" });
    this.lobbyChat.set(entrantId, lines.slice(-5));
    this.render();
  }

  gotRoomState(msg) {
    if (msg.room && this.room && msg.room !== this.room) return;
    this.settings = msg.settings || {};
    // `joined` carries settings only; the number and PIN come with room_state
    if (msg.type === "room_state") {
      this.dialIn = { pin: msg.dial_in_pin || null, numbers: msg.dial_in_numbers || [] };
      // every leader of the room gets the link, also one who joined a running room
      if (msg.invite_url) this.setInvite(msg.invite_url);
    }
    if (!this.settings.dial_in) this.dialIn = { pin: null, numbers: [] };
    this.render();
  }

  /** Errors answering the E2EE and dial-in switches. */
  async gotError(msg) {
    if (msg.ref === "set_e2ee" && msg.code === "phones_present") {
      this.render(); // still off while the leader decides
      const sure = await confirmDialog(t("e2ee_phones_confirm"), t("e2ee_phones_yes"));
      if (sure) this.send({ type: "set_e2ee", on: true, drop_phones: true });
      else this.render();
      return;
    }
    this.render(); // the switch shows what the server has, not what was asked
    notice(errorText(msg), { urgent: true });
  }

  render() {
    const n = this.entrants.length;
    $("lobby-title").textContent = t("lobby_queue_title", { n });
    $("lobby-empty").hidden = n > 0;
    const refused = $("lobby-refused");
    refused.hidden = !this.refused;
    refused.textContent = this.refused ? t("lobby_refused", { n: this.refused }) : "";
    $("admit-all").hidden = n < 2;
    const badge = $("lobby-badge");
    badge.hidden = n === 0;
    badge.textContent = String(n);
    badge.setAttribute("aria-label", t("lobby_queue_title", { n }));
    $("lobby-list").replaceChildren(...this.entrants.map((e) => this.entrant(e)));
    $("set-lobby").checked = this.settings.lobby !== false;
    $("set-lock").checked = !!this.settings.locked;
    this.renderSecurity();
    this.renderInvite();
    $("password-state").textContent = this.settings.has_password ? t("password_is_set") : t("password_not_set");
    $("password-clear").hidden = !this.settings.has_password;
  }

  renderSecurity() {
    const e2ee = !!this.settings.e2ee;
    const dialIn = !!this.settings.dial_in && !e2ee;
    $("set-e2ee").checked = e2ee;
    const dialSwitch = $("set-dial-in");
    dialSwitch.checked = dialIn;
    dialSwitch.disabled = e2ee;
    dialSwitch.closest("label").classList.toggle("disabled", e2ee);
    $("dial-in-hint").textContent = t(e2ee ? "dial_in_e2ee_hint" : dialIn ? "dial_in_on_hint" : "dial_in_off_hint");
    const { pin, numbers } = this.dialIn;
    const show = dialIn && !!pin;
    $("dial-in-info").hidden = !show;
    $("dial-in-numbers-label").textContent = t(numbers.length > 1 ? "dial_in_numbers" : "dial_in_number");
    $("dial-in-numbers").replaceChildren(...(show ? numbers : []).map((n) => el("span", { cls: "number", text: n })));
    $("dial-in-pin").textContent = show ? groupsOfThree(pin) : "";
  }

  entrant(entry) {
    const e = { ...entry, name: sameNames.label(entry) };
    const admit = el("button", {
      cls: "primary",
      text: t("admit"),
      attrs: { type: "button", "aria-label": t("admit_name", { name: e.name }), "data-action": "admit" },
    });
    admit.addEventListener("click", () => this.send({ type: "admit", id: e.id }));
    const deny = el("button", {
      text: t("deny"),
      attrs: { type: "button", "aria-label": t("deny_name", { name: e.name }), "data-action": "deny" },
    });
    deny.addEventListener("click", () => this.send({ type: "deny", id: e.id }));
    const reply = el("input", {
      attrs: { type: "text", maxlength: 2000, "aria-label": t("lobby_reply_label", { name: e.name }), placeholder: t("lobby_reply_label", { name: e.name }) },
    });
    const form = el("form", { cls: "chat-form" }, [reply, el("button", { text: t("chat_send"), attrs: { type: "submit" } })]);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = reply.value.trim();
      if (text && this.send({ type: "chat", text, to: e.id })) reply.value = "";
    });
    const lines = (this.lobbyChat.get(e.id) || []).map((line) =>
      el("li", { cls: "chat-item" }, [
        el("span", { cls: "chat-name", text: line.name }),
        el("span", { cls: "chat-text", text: line.text }),
      ]),
    );
    const kind = ENTRANT_KINDS.get(e.kind);
    return el("li", { cls: "entrant", attrs: { "data-entrant": e.id, "data-kind": kind ? e.kind : null } }, [
      el("div", { cls: "person-line" }, [
        el("span", { cls: "person-name", text: e.name }),
        kind ? el("span", { cls: `mark kind ${e.kind}`, text: t(kind) }) : null,
      ]),
      el("div", { cls: "row" }, [admit, deny]),
      lines.length ? el("ol", { cls: "chat-log" }, lines) : null,
      form,
    ]);
  }
}

/** "123456789" → "123 456 789": easier to read out and to type on a phone. */
export function groupsOfThree(digits) {
  return String(digits).replace(/\D/g, "").replace(/(\d{3})(?=\d)/g, "$1 ");
}
