/**
 * The meeting itself: tiles, controls (microphone, camera, screen, hand, panels,
 * leave), the participant list, chat and — for leaders — the leader panel.
 *
 * Media: the up connection is created when we enter and carries our tracks; the down
 * connection is created on the first `down_offer`. Muting stops the device and sends
 * nothing (replaceTrack(null)); `media_state` tells the others.
 */

import { $, el, notice, confirmDialog, chime, answerOf } from "./dom.js";
import { t, onLangChange } from "./i18n.js";
import { UpConnection, DownConnection } from "./peers.js";
import { Tiles } from "./tiles.js";
import { PeopleList } from "./participants.js";
import { ChatPanel } from "./chat.js";
import { LeaderPanel } from "./leader.js";

const SPEAKER_POLL_MS = 300;
const SPEAKER_THRESHOLD = 0.03;
const SPEAKER_HOLD_MS = 1500;

export class RoomView {
  constructor(sig, media) {
    this.sig = sig;
    this.media = media;
    this.tiles = new Tiles();
    this.people = new PeopleList(sig);
    this.chat = new ChatPanel(sig);
    this.leader = new LeaderPanel(sig);
    this.up = null;
    this.down = null;
    this.me = null;
    this.iceServers = [];
    this.participants = [];
    this.hand = false;
    this.othersVideo = true; // false: the person turned the others' cameras off for themselves
    this.fewerFrames = false; // true: the others' cameras at a quarter of their frame rate
    this.panel = null;
    this.speakerTimer = null;
    this.lastLoud = 0;
    this.onLeave = null;
    this.onMediaFailed = null;
    this.chat.isOpen = () => this.panel === "chat";
    this.leader.onKnock = () => this.openPanel("leader");
    $("btn-mic").addEventListener("click", () => this.toggleMic());
    $("btn-camera").addEventListener("click", () => this.toggleCamera());
    $("btn-screen").addEventListener("click", () => this.toggleScreen());
    $("btn-hand").addEventListener("click", () => this.toggleHand());
    $("btn-people").addEventListener("click", () => this.togglePanel("people"));
    $("btn-chat").addEventListener("click", () => this.togglePanel("chat"));
    $("btn-leader").addEventListener("click", () => this.togglePanel("leader"));
    $("btn-leave").addEventListener("click", () => this.askLeave());
    $("btn-more").addEventListener("click", () => this.toggleMenu());
    $("menu-screen").addEventListener("click", () => {
      this.closeMenu();
      this.toggleScreen();
    });
    $("menu-video-in").addEventListener("click", () => {
      this.closeMenu();
      this.setOthersVideo(!this.othersVideo);
    });
    $("menu-fewer-frames").addEventListener("click", () => {
      this.closeMenu();
      this.setFewerFrames(!this.fewerFrames);
    });
    $("menu-shortcuts").addEventListener("click", () => {
      this.closeMenu();
      this.showShortcuts();
    });
    $("menu-invite").addEventListener("click", () => {
      this.closeMenu();
      this.leader.copyInvite();
    });
    $("shortcuts-close").addEventListener("click", () => $("shortcuts").close());
    document.addEventListener("keydown", (ev) => this.shortcut(ev));
    document.addEventListener("click", (ev) => {
      if (!$("more-menu").hidden && !ev.target.closest(".menu-wrap")) this.closeMenu();
    });
    this.people.onLowerHand = (id) => this.sig.send({ type: "lower_hand", room: this.me && this.me.room, id });
    media.onScreenEnded = () => this.stopScreen();
    onLangChange(() => {
      this.renderAll();
      this.renderVideoIn();
    });
    this.renderVideoIn();
  }

  /**
   * Others' cameras on or off for us alone (a weak link keeps their voices and screens):
   * the server then offers no camera video to this page at all.
   */
  setOthersVideo(on) {
    this.othersVideo = on;
    this.sendReceive();
    this.renderVideoIn();
    notice(t(on ? "others_video_back" : "others_video_gone"));
  }

  /**
   * The others' cameras with all their frames or about a quarter of them (the SFU then
   * forwards only their lowest temporal layer to us: less data, same picture size).
   */
  setFewerFrames(on) {
    this.fewerFrames = on;
    this.sendReceive();
    this.renderVideoIn();
    notice(t(on ? "fewer_frames_set" : "fewer_frames_unset"));
  }

  sendReceive() {
    const kinds = this.othersVideo ? ["audio", "video", "screen"] : ["audio", "screen"];
    this.sig.send({ type: "receive", kinds, fewer_frames: this.fewerFrames });
  }

  renderVideoIn() {
    const button = $("menu-video-in");
    button.textContent = t(this.othersVideo ? "others_video_off" : "others_video_on");
    button.setAttribute("aria-pressed", String(!this.othersVideo));
    const fewer = $("menu-fewer-frames");
    fewer.textContent = t(this.fewerFrames ? "fewer_frames_off" : "fewer_frames_on");
    fewer.setAttribute("aria-pressed", String(this.fewerFrames));
  }

  /** Starts the devices the person chose before joining (off while they waited). */
  async startWantedDevices() {
    if (this.media.micWanted && !this.media.micOn) await this.media.setMic(true);
    if (this.media.cameraWanted && !this.media.cameraOn) await this.media.setCamera(true);
  }

  get isLeader() {
    return !!this.me && (this.me.role === "leader" || this.me.role === "coleader");
  }

  /** `joined` arrived (first time or after a resume): fresh connections, fresh view. */
  async enter(joined, iceServers) {
    this.closePeers();
    const firstEntry = !this.me || this.me.room !== joined.room;
    this.me = { id: joined.id, role: joined.role, room: joined.room };
    // A resume is a new connection: the server forgets what we chose to receive.
    if (!this.othersVideo || this.fewerFrames) this.sendReceive();
    this.leftAsLeader = false;
    this.iceServers = iceServers || [];
    this.handsSeen = new Set();
    if (firstEntry && joined.role === "guest") {
      // let in: a calm sound and a notice say so (the tab's title too, below), also in
      // another tab; a leader was not let in, and keeps what the start told them
      chime();
      notice(t("admitted_notice"));
    }
    document.title = t("title_in_room");
    // the server starts every seat with the hand down and re-sends the recent chat
    this.chat.clear();
    this.hand = false;
    this.tiles.reset();
    this.tiles.myId = joined.id;
    this.people.myId = joined.id;
    this.people.room = joined.room;
    this.people.isLeader = this.isLeader;
    this.leader.setRoom(joined.room);
    this.leader.gotRoomState({ room: joined.room, settings: joined.settings || {} });
    $("btn-leader").hidden = !this.isLeader;
    $("room-heading").textContent = joined.room;
    // Only now, after the view was reset: the others' tracks can arrive while the
    // devices start, and must land in the fresh view, not be cleared with the old one.
    await this.startWantedDevices();
    this.tiles.setLocalVideo(this.media.camera);
    if (this.media.screenOn) this.tiles.setVideo(this.tiles.tile(joined.id, "screen"), this.media.screen);
    this.renderAll();
    this.startSpeakerLoop();
    await this.startMedia();
  }

  /** Our up connection, offered with whatever we send; the down one follows the server's offer. */
  async startMedia() {
    this.up = new UpConnection(this.sig, this.iceServers);
    this.up.onFailed = () => this.onMediaFailed && this.onMediaFailed();
    this.sendMediaState();
    await this.up.start({ mic: this.media.mic, camera: this.media.camera, screen: this.media.screen });
  }

  /** `media_restart`: the server's media process lost our connections; new ones, same seat. */
  async restartMedia() {
    if (!this.me) return;
    this.closePeers();
    await this.startMedia();
  }

  closePeers() {
    if (this.up) this.up.close();
    if (this.down) this.down.close();
    this.up = null;
    this.down = null;
  }

  /** Leaving for any reason: connections closed, devices kept for a rejoin unless `stopDevices`. */
  teardown({ stopDevices = false } = {}) {
    this.closePeers();
    clearInterval(this.speakerTimer);
    this.speakerTimer = null;
    this.tiles.reset();
    this.participants = [];
    this.leftAsLeader = this.isLeader;
    this.me = null;
    this.closeMenu();
    if (stopDevices) this.media.stopAll();
    else this.media.stopScreen();
  }

  gotParticipants(msg) {
    if (!this.me || (msg.room && msg.room !== this.me.room)) return;
    this.participants = msg.participants || [];
    const mine = this.participants.find((p) => p.id === this.me.id);
    if (mine && mine.role !== this.me.role) {
      this.me.role = mine.role;
      this.people.isLeader = this.isLeader;
      $("btn-leader").hidden = !this.isLeader;
    }
    // our own hand follows the server (a leader may lower it)
    if (mine && this.hand && !mine.hand) notice(t("hand_lowered_by_leader"));
    if (mine) this.hand = !!mine.hand;
    this.noticeHands();
    this.tiles.update(this.participants);
    this.people.update(this.participants);
    this.renderControls();
  }

  /** A leader hears of every newly raised hand, once. */
  noticeHands() {
    const raised = this.participants.filter((p) => p.hand);
    const fresh = raised.filter((p) => !this.handsSeen.has(p.id) && p.id !== this.me.id);
    this.handsSeen = new Set(raised.map((p) => p.id));
    if (this.isLeader && fresh.length) {
      chime();
      notice(t("hand_notice", { name: fresh.map((p) => this.people.label(p)).join(", ") }), { seconds: 10 });
    }
  }

  gotDownOffer(msg) {
    if (!this.me) return;
    if (!this.down) {
      this.down = new DownConnection(this.sig, this.iceServers);
      this.down.onTrack = (info, track) => {
        performance.mark(`kreis:track-${info.kind}`);
        this.tiles.attach(info, track);
        // a newcomer should not wait for the publisher's next periodic keyframe
        if (info.kind === "video") this.sig.send({ type: "keyframe", participant: info.participant });
      };
      this.down.onTrackGone = (info) => this.tiles.detach(info);
      this.down.onFailed = () => this.onMediaFailed && this.onMediaFailed();
    }
    this.down.gotOffer(msg);
  }

  gotUpAnswer(msg) {
    if (this.up) this.up.gotAnswer(msg);
  }

  gotChat(msg) {
    this.chat.gotChat(msg, this.me && this.me.id);
  }

  /**
   * `mute_request`: with `ask` the leader asks, and the person decides (a dialog with
   * "Mute now" and "Keep it on"); without it the leader muted them, and they are told.
   */
  async gotMuteRequest(msg = {}) {
    if (msg.ask) {
      if (!this.media.micOn) return;
      const dialog = $("mute-ask");
      if (dialog.open) return;
      const yes = await answerOf(dialog, $("mute-ask-yes"), $("mute-ask-no"), { focus: $("mute-ask-yes") });
      if (yes && this.media.micOn) await this.setMic(false);
      return;
    }
    if (this.media.micOn) await this.setMic(false);
    notice(t("mute_requested"), { urgent: true, seconds: 10 });
  }

  sendMediaState() {
    this.sig.send({
      type: "media_state",
      mic: this.media.micOn,
      camera: this.media.cameraOn,
      screen: this.media.screenOn,
    });
  }

  async setMic(on) {
    const track = await this.media.setMic(on);
    if (on && !track) notice(t("device_failed"), { urgent: true });
    if (this.up) await this.up.setTrack("mic", track);
    this.sendMediaState();
    this.renderControls();
  }

  async setCamera(on) {
    const track = await this.media.setCamera(on);
    if (on && !track) notice(t("device_failed"), { urgent: true });
    if (this.up) await this.up.setTrack("camera", track);
    this.tiles.setLocalVideo(track);
    this.sendMediaState();
    this.renderControls();
  }

  toggleMic() {
    return this.setMic(!this.media.micOn);
  }

  toggleCamera() {
    return this.setCamera(!this.media.cameraOn);
  }

  async toggleScreen() {
    if (this.media.screenOn) return this.stopScreen();
    const track = await this.media.startScreen();
    if (!track) {
      notice(t("share_failed"));
      return;
    }
    this.tiles.setVideo(this.tiles.tile(this.me.id, "screen"), track);
    this.sendMediaState();
    this.renderControls();
    if (this.up) await this.up.setScreen(track);
  }

  async stopScreen() {
    this.media.stopScreen();
    if (this.me) this.tiles.drop(this.me.id, "screen");
    this.sendMediaState();
    this.renderControls();
    if (this.up) await this.up.setScreen(null);
  }

  toggleHand() {
    this.hand = !this.hand;
    this.sig.send({ type: "hand", raised: this.hand });
    this.renderControls();
  }

  async askLeave() {
    if (await confirmDialog(t("leave_confirm"), t("leave"))) {
      this.sig.send({ type: "leave" });
      if (this.onLeave) this.onLeave();
    }
  }

  togglePanel(name) {
    if (this.panel === name) this.closePanel();
    else this.openPanel(name);
  }

  openPanel(name) {
    this.panel = name;
    $("side").hidden = false;
    for (const p of ["people", "chat", "leader"]) {
      $(`panel-${p}`).hidden = p !== name;
      $(`btn-${p}`).setAttribute("aria-expanded", String(p === name));
    }
    if (name === "chat") this.chat.opened();
  }

  closePanel() {
    this.panel = null;
    $("side").hidden = true;
    for (const p of ["people", "chat", "leader"]) {
      $(`panel-${p}`).hidden = true;
      $(`btn-${p}`).setAttribute("aria-expanded", "false");
    }
  }

  renderControls() {
    setControl("btn-mic", this.media.micOn, t("ctl_mic_on"), t("ctl_mic_off"), t("mute"), t("unmute"));
    setControl("btn-camera", this.media.cameraOn, t("ctl_camera_on"), t("ctl_camera_off"), t("camera_off"), t("camera_on"));
    setControl("btn-screen", !this.media.screenOn, t("ctl_share"), t("ctl_share_stop"), t("share_start"), t("share_stop"));
    setControl("btn-hand", !this.hand, t("ctl_hand"), t("ctl_hand_up"), t("hand_raise"), t("hand_lower"));
    $("btn-hand").setAttribute("aria-pressed", String(this.hand));
    const canShare = !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
    $("btn-screen").hidden = !canShare;
    $("menu-screen").hidden = !canShare;
    $("menu-screen").textContent = this.media.screenOn ? t("share_stop") : t("share_start");
    // the count is always in sight, not only inside the panel
    const n = this.participants.length;
    $("people-count").textContent = n ? String(n) : "";
    $("btn-people").setAttribute("aria-label", t("people_count_label", { n }));
    $("menu-invite").hidden = !this.isLeader || $("invite").hidden;
  }

  toggleMenu() {
    if ($("more-menu").hidden) this.openMenu();
    else this.closeMenu();
  }

  openMenu() {
    this.renderControls();
    $("more-menu").hidden = false;
    $("btn-more").setAttribute("aria-expanded", "true");
    const first = [...$("more-menu").querySelectorAll("button")].find((b) => !b.hidden && b.offsetParent !== null);
    if (first) first.focus();
  }

  closeMenu() {
    $("more-menu").hidden = true;
    $("btn-more").setAttribute("aria-expanded", "false");
  }

  showShortcuts() {
    const list = $("shortcuts-list");
    list.replaceChildren(
      ...SHORTCUTS.flatMap(([key, label]) => [el("dt", {}, [el("kbd", { text: key })]), el("dd", { text: t(label) })]),
    );
    $("shortcuts").showModal();
  }

  /** Single keys in the room, never while typing or with a dialog open. */
  shortcut(ev) {
    if (!this.me || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    const target = ev.target;
    if (target && (target.closest("input, textarea, select, [contenteditable]") || target.closest("dialog[open]"))) return;
    if (ev.key === "Escape" && !$("more-menu").hidden) {
      this.closeMenu();
      $("btn-more").focus();
      return;
    }
    if (ev.key === "Escape" && this.tiles.enlarged) {
      this.tiles.enlarge(null);
      return;
    }
    const actions = {
      m: () => this.toggleMic(),
      v: () => this.toggleCamera(),
      h: () => this.toggleHand(),
      p: () => this.togglePanel("people"),
      c: () => this.togglePanel("chat"),
      "?": () => this.showShortcuts(),
    };
    const action = actions[ev.key.toLowerCase()];
    if (!action) return;
    ev.preventDefault();
    action();
  }

  renderAll() {
    if (this.me) document.title = t("title_in_room");
    this.renderControls();
    this.tiles.renderAll();
    this.people.render();
    this.leader.render();
  }

  /** The loudest remote voice is the active speaker (held briefly to avoid flicker). */
  startSpeakerLoop() {
    clearInterval(this.speakerTimer);
    this.speakerTimer = setInterval(() => {
      if (!this.down) return;
      let best = null;
      let bestLevel = SPEAKER_THRESHOLD;
      for (const [mid, info] of this.down.current) {
        if (info.kind !== "audio") continue;
        const who = this.participants.find((p) => p.id === info.participant);
        if (who && who.mic === false) continue;
        const receiver = this.down.receiverFor(mid);
        const sources = receiver && receiver.getSynchronizationSources ? receiver.getSynchronizationSources() : [];
        const level = sources.length ? sources[0].audioLevel || 0 : 0;
        if (level > bestLevel) {
          bestLevel = level;
          best = info.participant;
        }
      }
      const now = Date.now();
      if (best) {
        this.lastLoud = now;
        this.tiles.setSpeaker(best);
      } else if (now - this.lastLoud > SPEAKER_HOLD_MS) {
        this.tiles.setSpeaker(null);
      }
    }, SPEAKER_POLL_MS);
  }

  /** Counters for the debugging hook (window.kreis). */
  async stats() {
    return {
      inbound: this.down ? await this.down.stats() : [],
      outbound: this.up ? await this.up.stats() : [],
      hasDown: !!this.down,
      hasUp: !!this.up,
      upState: this.up ? this.up.pc.connectionState : null,
      downState: this.down ? this.down.pc.connectionState : null,
    };
  }
}

const SHORTCUTS = [
  ["M", "shortcut_mic"],
  ["V", "shortcut_camera"],
  ["H", "shortcut_hand"],
  ["P", "shortcut_people"],
  ["C", "shortcut_chat"],
  ["?", "shortcut_help"],
  ["Esc", "shortcut_shrink"],
];

/**
 * A control button: a short visible label with its icon ("Mic off"), and the action
 * it does as its accessible name ("Unmute microphone").
 */
function setControl(id, on, shortWhenOn, shortWhenOff, actionWhenOn, actionWhenOff) {
  const button = $(id);
  button.querySelector(".label").textContent = on ? shortWhenOn : shortWhenOff;
  button.setAttribute("aria-label", on ? actionWhenOn : actionWhenOff);
  button.dataset.state = on ? "on" : "off";
}

