/**
 * Video tiles: one per participant (camera or a calm placeholder with the initial),
 * one more per shared screen, our own tile first. Remote audio plays through hidden
 * <audio> elements, one per remote audio track.
 *
 * Every member the server lists gets a tile, whatever its kind: whoever can hear the
 * room is seen in it. Consoles and phones have no camera, so theirs is an audio-only
 * tile that says what they are ("Leader (console)", "phone").
 *
 * Tiles show the name (as text), and small state marks: kind, reconnecting, microphone
 * off, camera off, hand raised; the active speaker's tile gets a highlighted frame.
 */

import { $, el, notice } from "./dom.js";
import { t } from "./i18n.js";
import { audioOnly, handsInOrder, kindMark, kindOf, sameNames } from "./participants.js";

export class Tiles {
  constructor() {
    this.grid = $("tiles");
    this.sink = $("audio-sink");
    this.tiles = new Map(); // "pid:camera" | "pid:screen" -> {root, video, avatar, caption, marks}
    this.audio = new Map(); // mid -> HTMLAudioElement
    this.people = new Map(); // pid -> participant entry
    this.myId = null;
    this.speaker = null;
    this.enlarged = null; // the tile key shown over the whole stage, or null
    this.quality = {}; // pid -> {quality, videoStalled, audioFlowing} (peers.js judgeQuality)
    this.weakSince = 0;
    this.weakShown = false;
    window.addEventListener("kreis:link-quality", (event) => this.setQuality(event.detail));
  }

  /**
   * Connection quality per remote tile, and the hint to us when it is our own link that
   * is weak: every camera that is on arrives without video while their voices arrive.
   */
  setQuality(quality) {
    this.quality = quality || {};
    const cams = Object.entries(this.quality).filter(([pid]) => {
      const p = this.people.get(pid);
      return p && p.camera !== false && pid !== this.myId;
    });
    const paused = cams.length > 0 && cams.every(([, q]) => q.videoStalled && q.audioFlowing);
    const now = Date.now();
    if (!paused) {
      this.weakSince = 0;
      this.weakShown = false;
    } else if (!this.weakSince) {
      this.weakSince = now;
    } else if (!this.weakShown && now - this.weakSince >= 3000) {
      this.weakShown = true;
      notice(t("link_weak"), { urgent: true, seconds: 12 });
    }
    document.body.classList.toggle("link-weak", this.weakShown);
    this.renderAll();
  }

  reset() {
    for (const audio of this.audio.values()) audio.srcObject = null;
    this.audio.clear();
    this.sink.replaceChildren();
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    this.tiles.clear();
    this.grid.replaceChildren();
    this.people.clear();
    this.speaker = null;
    this.enlarged = null;
    this.grid.classList.remove("has-enlarged");
  }

  tile(pid, source) {
    const key = `${pid}:${source}`;
    let tile = this.tiles.get(key);
    if (tile) return tile;
    const video = el("video", { attrs: { autoplay: true, playsinline: true, muted: true } });
    video.muted = true;
    const avatar = el("div", { cls: "avatar", attrs: { "aria-hidden": "true" } });
    const name = el("span", { cls: "tile-name" });
    const marks = el("span", { cls: "marks" });
    const caption = el("figcaption", {}, [name, marks]);
    const root = el("figure", { cls: `tile ${source}`, attrs: { "data-participant": pid, "data-source": source } }, [
      video,
      avatar,
      caption,
    ]);
    video.hidden = true;
    tile = { root, video, avatar, name, marks, source, pid, hasVideo: false, enlarge: null };
    if (source === "screen") {
      // a shared screen can fill the stage (and back): text on it must be readable
      tile.enlarge = el("button", { cls: "enlarge", attrs: { type: "button", "aria-pressed": "false" } });
      tile.enlarge.addEventListener("click", () => this.enlarge(this.enlarged === key ? null : key));
      caption.append(tile.enlarge);
    }
    this.tiles.set(key, tile);
    if (pid === this.myId && source === "camera") this.grid.prepend(root);
    else this.grid.append(root);
    this.layout();
    return tile;
  }

  /**
   * Shows the tile `key` (a shared screen) over the whole stage, the others in a strip
   * below it; null goes back to the grid. Escape does that too (room.js).
   */
  enlarge(key) {
    this.enlarged = key && this.tiles.has(key) ? key : null;
    this.grid.classList.toggle("has-enlarged", !!this.enlarged);
    for (const [k, tile] of this.tiles) {
      tile.root.classList.toggle("enlarged", k === this.enlarged);
      if (tile.enlarge) this.renderEnlarge(tile, k === this.enlarged);
    }
    const tile = this.enlarged && this.tiles.get(this.enlarged);
    if (tile) tile.enlarge.focus();
  }

  renderEnlarge(tile, on) {
    tile.enlarge.setAttribute("aria-pressed", String(on));
    tile.enlarge.textContent = t(on ? "screen_shrink" : "screen_enlarge");
  }

  drop(pid, source) {
    const key = `${pid}:${source}`;
    const tile = this.tiles.get(key);
    if (!tile) return;
    if (this.enlarged === key) this.enlarge(null);
    tile.video.srcObject = null;
    tile.root.remove();
    this.tiles.delete(key);
    this.layout();
  }

  /** Our own camera (mirrored, never with sound). */
  setLocalVideo(track) {
    if (!this.myId) return;
    const tile = this.tile(this.myId, "camera");
    tile.root.classList.add("self");
    this.setVideo(tile, track);
  }

  setVideo(tile, track) {
    tile.hasVideo = !!track;
    tile.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) tile.video.play().catch(() => {});
    this.renderTile(tile);
  }

  /** A remote track arrived on the down connection. */
  attach(info, track) {
    if (info.kind === "audio") {
      let audio = this.audio.get(info.mid);
      if (!audio) {
        audio = el("audio", { attrs: { autoplay: true } });
        this.audio.set(info.mid, audio);
        this.sink.append(audio);
      }
      audio.srcObject = new MediaStream([track]);
      audio.play().catch(() => {});
      return;
    }
    const tile = this.tile(info.participant, info.source === "screen" ? "screen" : "camera");
    tile.mid = info.mid;
    this.setVideo(tile, track);
  }

  detach(info) {
    if (info.kind === "audio") {
      const audio = this.audio.get(info.mid);
      if (audio) {
        audio.srcObject = null;
        audio.remove();
      }
      this.audio.delete(info.mid);
      return;
    }
    if (info.source === "screen") {
      this.drop(info.participant, "screen");
      return;
    }
    const tile = this.tiles.get(`${info.participant}:camera`);
    if (tile && tile.mid === info.mid) this.setVideo(tile, null);
  }

  /** The participant list changed: names, marks, tiles for newcomers, none for leavers. */
  update(participants) {
    sameNames.set("room", participants);
    this.people = new Map(participants.map((p) => [p.id, p]));
    this.handPlace = new Map(handsInOrder(participants).map((p, i) => [p.id, i + 1]));
    for (const p of participants) this.tile(p.id, "camera");
    for (const tile of [...this.tiles.values()]) {
      const p = this.people.get(tile.pid);
      if (!p || (tile.source === "screen" && !p.screen && !tile.hasVideo)) {
        this.drop(tile.pid, tile.source);
        continue;
      }
      this.renderTile(tile);
    }
  }

  renderTile(tile) {
    const p = this.people.get(tile.pid);
    const name = p ? sameNames.label(p) : "";
    const mine = tile.pid === this.myId;
    const label = tile.source === "screen" ? t("screen_of", { name }) : mine ? `${name} (${t("you")})` : name;
    tile.name.textContent = label;
    if (tile.enlarge) this.renderEnlarge(tile, this.enlarged === `${tile.pid}:${tile.source}`);
    // a screen reader hears the kind too: "Leitung, Leader (console), reconnecting"
    const kind = p && tile.source === "camera" ? kindMark(p) : null;
    const spoken = [label, kind && kind[1], p && p.away && t("away")].filter(Boolean).join(", ");
    tile.root.setAttribute("aria-label", spoken);
    const cameraOn = p ? p.camera !== false : true;
    const showVideo = tile.hasVideo && (tile.source === "screen" || cameraOn);
    tile.video.hidden = !showVideo;
    tile.avatar.hidden = showVideo;
    tile.avatar.textContent = initial(name);
    tile.root.classList.toggle("speaking", tile.pid === this.speaker && tile.source === "camera");
    tile.root.classList.toggle("audio-only", !!p && audioOnly(p) && tile.source === "camera");
    tile.root.classList.toggle("away", !!p && !!p.away);
    if (p) tile.root.dataset.kind = kindOf(p);
    const q = tile.source === "camera" && !mine ? this.quality[tile.pid] : null;
    if (q) tile.root.dataset.quality = q.quality;
    else delete tile.root.dataset.quality;
    const marks = [];
    if (p && tile.source === "camera") {
      if (kind) marks.push(kind);
      if (p.away) marks.push(["away", t("away")]);
      if (p.mic === false) marks.push(["mic-off", t("mic_off_icon")]);
      if (p.camera === false && !audioOnly(p)) marks.push(["camera-off", t("camera_off_icon")]);
      if (p.hand) marks.push(["hand", `${t("hand_icon")} (${(this.handPlace && this.handPlace.get(p.id)) || 1})`]);
      if (tile.pid === this.speaker) marks.push(["speaking", t("speaking")]);
      if (q && q.videoStalled && cameraOn && q.audioFlowing) marks.push(["quality poor", t("video_paused")]);
      else if (q && q.quality !== "good") marks.push([`quality ${q.quality}`, t(`link_${q.quality}`)]);
    }
    tile.marks.replaceChildren(...marks.map(([cls, text]) => el("span", { cls: `mark ${cls}`, text })));
  }

  renderAll() {
    for (const tile of this.tiles.values()) this.renderTile(tile);
  }

  setSpeaker(pid) {
    if (pid === this.speaker) return;
    this.speaker = pid;
    this.renderAll();
  }

  /** Column count follows the number of tiles, so faces stay as large as possible. */
  layout() {
    const n = this.tiles.size;
    const cols = n <= 1 ? 1 : n <= 4 ? 2 : n <= 9 ? 3 : 4;
    this.grid.style.setProperty("--cols", String(cols));
  }
}

function initial(name) {
  const ch = Array.from(String(name || "?").trim())[0] || "?";
  return ch.toUpperCase();
}
