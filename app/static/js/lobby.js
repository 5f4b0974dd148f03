/**
 * The waiting screens: "waiting for the leader" (the room has not been started) and
 * the lobby (the leader has been told and will let us in). In the lobby the leader's
 * messages appear, and a short message can go back to the leaders.
 *
 * Nothing is captured while waiting: a lobby entrant has no down connection at all, and
 * camera and microphone are off. Only if the person asks for it, a self-view shows
 * their own camera to them alone; it goes off when they leave this screen.
 */

import { $, el, showScreen } from "./dom.js";
import { t, onLangChange } from "./i18n.js";

export class LobbyView {
  constructor(sig) {
    this.sig = sig;
    this.mode = null; // "leader" | "lobby" | "connecting"
    this.onCancel = null;
    $("wait-cancel").addEventListener("click", () => this.onCancel && this.onCancel());
    $("lobby-chat-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.sendMessage();
    });
    this.selfview = null; // the self-view's camera track, while the person wants it
    $("selfview-toggle").addEventListener("click", () => (this.selfview ? this.stopSelfview() : this.startSelfview()));
    document.addEventListener("kreis:screen", (ev) => {
      if (ev.detail !== "screen-wait") this.stopSelfview();
    });
    onLangChange(() => this.render());
  }

  async startSelfview() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0] || null;
      if (!track || $("screen-wait").hidden) {
        if (track) track.stop();
        return;
      }
      this.selfview = track;
      const video = $("selfview");
      video.srcObject = new MediaStream([track]);
      video.hidden = false;
    } catch (_) {
      this.selfview = null;
    }
    this.renderSelfview();
  }

  stopSelfview() {
    if (this.selfview) this.selfview.stop();
    this.selfview = null;
    const video = $("selfview");
    video.srcObject = null;
    video.hidden = true;
    this.renderSelfview();
  }

  renderSelfview() {
    const button = $("selfview-toggle");
    button.textContent = t(this.selfview ? "selfview_hide" : "selfview_show");
    button.setAttribute("aria-pressed", String(!!this.selfview));
  }

  showConnecting() {
    this.mode = "connecting";
    this.render();
    showScreen("screen-wait");
  }

  showWaitingForLeader() {
    this.mode = "leader";
    this.render();
    showScreen("screen-wait");
  }

  showLobby() {
    const fresh = this.mode !== "lobby";
    this.mode = "lobby";
    if (fresh) $("lobby-messages").replaceChildren();
    this.render();
    showScreen("screen-wait");
  }

  render() {
    const title = $("wait-title");
    const text = $("wait-text");
    if (this.mode === "leader") {
      title.textContent = t("waiting_leader_title");
      text.textContent = t("waiting_leader_text");
    } else if (this.mode === "lobby") {
      title.textContent = t("lobby_title");
      text.textContent = t("lobby_text");
    } else {
      title.textContent = t("connecting");
      text.textContent = "";
    }
    $("lobby-box").hidden = this.mode !== "lobby";
    // the tab says it too, for someone who looks at another tab meanwhile
    document.title = t("title_waiting");
    this.renderSelfview();
  }

  /** A chat message while waiting: from the leader, or our own echo. */
  gotChat(msg) {
    if (this.mode !== "lobby") return;
    const list = $("lobby-messages");
    const item = el("li", { cls: "chat-item" }, [
      el("span", { cls: "chat-name", text: msg.name || "" }),
      el("span", { cls: "chat-text", text: msg.text || "" }),
    ]);
    list.append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  sendMessage() {
    const input = $("lobby-chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (!this.sig.send({ type: "chat", text, to: null })) return;
    input.value = "";
    // the server sends a lobby message to the leaders only: show our own copy here
    this.gotChat({ name: t("you"), text });
  }
}
