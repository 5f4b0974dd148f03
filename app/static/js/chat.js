/**
 * The room chat: messages in memory only, rendered as text, with an unread badge
 * while the panel is closed.
 */

import { $, el } from "./dom.js";
import { t, currentLang } from "./i18n.js";

export class ChatPanel {
  constructor(sig) {
    this.sig = sig;
    this.unread = 0;
    this.isOpen = () => false;
    $("chat-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
  }

  /** Forget everything (a new room, or we left). */
  clear() {
    $("chat-log").replaceChildren();
    $("chat-empty").hidden = false;
    this.unread = 0;
    this.renderBadge();
  }

  gotChat(msg, myId) {
    if (msg.lobby) return;
    $("chat-empty").hidden = true;
    const time = msg.ts ? new Date(msg.ts * 1000) : new Date();
    const stamp = time.toLocaleTimeString(currentLang(), { hour: "2-digit", minute: "2-digit" });
    const mine = msg.from && msg.from === myId;
    const item = el("li", { cls: mine ? "chat-item mine" : "chat-item" }, [
      el("span", { cls: "chat-name", text: msg.name || "" }),
      el("time", { cls: "chat-time", text: stamp }),
      el("span", { cls: "chat-text", text: msg.text || "" }),
    ]);
    const log = $("chat-log");
    log.append(item);
    item.scrollIntoView({ block: "nearest" });
    if (!mine && !msg.history && !this.isOpen()) {
      this.unread += 1;
      this.renderBadge();
    }
  }

  opened() {
    this.unread = 0;
    this.renderBadge();
    $("chat-input").focus();
  }

  renderBadge() {
    const badge = $("chat-badge");
    badge.hidden = this.unread === 0;
    badge.textContent = String(this.unread);
    badge.setAttribute("aria-label", `${this.unread} ${t("chat_title")}`);
  }

  send() {
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (this.sig.send({ type: "chat", text: text.slice(0, 2000), to: null })) input.value = "";
  }
}
