/**
 * The pre-join screen: name or pseudonym first, camera and microphone toggles beside the
 * preview, the room's rules to accept, the room password when the server asks for it,
 * and the leader's sign-in ("Start the meeting").
 *
 * Camera and microphone are off until the person switches them on: nothing is captured
 * before that, and nothing while waiting in the lobby either. Pressing Join stops the
 * devices but remembers the choice (LocalMedia.micWanted/cameraWanted); the room turns
 * them on again once the person is let in.
 *
 * A leader who opened the sign-in must give group and password: an empty field is an
 * error here, never a quiet fall-back to joining as a guest.
 *
 * It only collects; app.js talks to the server and reports answers back through
 * showError() and askPassword().
 */

import { $, el, showScreen } from "./dom.js";
import { t, onLangChange } from "./i18n.js";

const NAME_KEY = "kreis.name";
const MAX_NAME = 40;

/** Trim, collapse whitespace, drop control characters, at most 40 characters. */
export function cleanName(raw) {
  return String(raw || "")
    .normalize("NFC")
    .replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g, "")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, MAX_NAME);
}

export class Prejoin {
  constructor(media) {
    this.media = media;
    this.onSubmit = null; // ({name, password, leader}) => void
    this.preview = $("preview");
    this.micSelect = $("mic-select");
    this.cameraSelect = $("camera-select");
    this.busy = false;
    this.retrying = false; // after room_closed the Join button reads "Try again"
    this.devicesReady = Promise.resolve();
    this.deviceFailed = false;
    // off until the person switches them on (also after "Join again": their last choice)
    media.micWanted = false;
    media.cameraWanted = false;
    $("join-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.micSelect.addEventListener("change", () => this.chooseMic());
    this.cameraSelect.addEventListener("change", () => this.chooseCamera());
    $("toggle-camera").addEventListener("click", () => this.toggle("camera"));
    $("toggle-mic").addEventListener("click", () => this.toggle("mic"));
    $("leader-login").addEventListener("toggle", () => this.setBusy(this.busy));
    onLangChange(() => {
      this.fillDevices();
      this.renderToggles();
      this.setBusy(this.busy); // "Join", "Start the meeting" or "Try again" in the new language
    });
    const leaderWanted = location.hash === "#leader";
    if (leaderWanted) $("leader-login").open = true;
  }

  /** The leader's sign-in is open: the button starts the meeting. */
  get leading() {
    return $("leader-login").open;
  }

  /** A big toggle: switches the device on (asking the browser) or off (light out). */
  toggle(kind) {
    this.devicesReady = this.devicesReady.then(async () => {
      const on = kind === "mic" ? this.media.micOn : this.media.cameraOn;
      const track = kind === "mic" ? await this.media.setMic(!on) : await this.media.setCamera(!on);
      this.deviceFailed = !on && !track;
      this.showPreview();
      await this.fillDevices();
    });
    return this.devicesReady;
  }

  renderToggles() {
    for (const [kind, on] of [
      ["camera", this.media.cameraOn],
      ["mic", this.media.micOn],
    ]) {
      const button = $(`toggle-${kind}`);
      button.setAttribute("aria-pressed", String(on));
      button.dataset.state = on ? "on" : "off";
      button.querySelector(".label").textContent = t(`toggle_${kind}_${on ? "on" : "off"}`);
    }
  }

  /** Shows the screen, starts the preview and restores a remembered name (this tab only). */
  async show() {
    showScreen("screen-prejoin");
    const nameInput = $("name");
    if (!nameInput.value) {
      try {
        nameInput.value = sessionStorage.getItem(NAME_KEY) || "";
      } catch (_) {
        /* fine */
      }
    }
    this.setBusy(false);
    this.renderToggles();
    // joining waits for this: whoever presses Join quickly must still bring their devices
    this.devicesReady = (async () => {
      // only what the person switched on before (nothing on a first visit)
      if (!this.media.micOn && !this.media.cameraOn) await this.media.start();
      this.showPreview();
      await this.fillDevices();
    })();
    await this.devicesReady;
  }

  showPreview() {
    this.meterMic();
    const on = this.media.cameraOn;
    this.preview.srcObject = on ? new MediaStream([this.media.camera]) : null;
    this.preview.hidden = !on;
    $("preview-off").hidden = on;
    $("no-devices").hidden = !this.deviceFailed;
    this.renderToggles();
  }

  async fillDevices() {
    const devices = await this.media.devices();
    if (!devices.video.length && !devices.audio.length) $("no-devices").hidden = false;
    fillSelect(this.cameraSelect, devices.video, this.media.cameraOn ? this.media.cameraDeviceId : "", t("camera_label"));
    fillSelect(this.micSelect, devices.audio, this.media.micOn ? this.media.micDeviceId : "", t("mic_label"));
  }

  chooseMic() {
    const id = this.micSelect.value;
    this.devicesReady = this.devicesReady.then(() => this.media.chooseMic(id)).then(() => this.showPreview());
    return this.devicesReady;
  }

  chooseCamera() {
    const id = this.cameraSelect.value;
    this.devicesReady = this.devicesReady.then(() => this.media.chooseCamera(id)).then(() => this.showPreview());
    return this.devicesReady;
  }

  /** A level meter for the microphone: "can they hear me?" answered before joining. */
  meterMic() {
    const meter = $("mic-level");
    const track = this.media.micOn ? this.media.mic : null;
    meter.hidden = !track;
    if (this.meterTrack === track) return;
    this.meterTrack = track;
    if (this.meterSource) this.meterSource.disconnect();
    this.meterSource = null;
    if (!track) return;
    try {
      this.audioCtx = this.audioCtx || new AudioContext();
      const analyser = this.audioCtx.createAnalyser();
      analyser.fftSize = 512;
      this.meterSource = this.audioCtx.createMediaStreamSource(new MediaStream([track]));
      this.meterSource.connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      const tick = () => {
        if (this.meterTrack !== track || document.getElementById("screen-prejoin").hidden) return;
        analyser.getFloatTimeDomainData(samples);
        let peak = 0;
        for (const v of samples) peak = Math.max(peak, Math.abs(v));
        meter.value = Math.min(1, peak * 1.5);
        setTimeout(tick, 100);
      };
      tick();
      // browsers start audio only after a gesture; typing the name is one
      const resume = () => this.audioCtx.resume().catch(() => {});
      for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, resume, { once: true });
    } catch (_) {
      meter.hidden = true;
    }
  }

  /** The server wants a room password (or said it was wrong). */
  askPassword(message) {
    $("password-row").hidden = false;
    this.showError("");
    $("password-error").textContent = message || "";
    const input = $("room-password");
    input.value = "";
    input.focus();
  }

  /**
   * The room is not open to us (`room_closed`): it may not have started, be locked or
   * want a password, and the server does not say which. Say so calmly, offer the
   * password field (empty is fine) and turn Join into "Try again".
   */
  offerRetry(message) {
    $("password-row").hidden = false;
    $("password-error").textContent = "";
    this.showError(message);
    this.retrying = true;
    this.setBusy(false);
  }

  /** The name was refused (`reserved_name`): the name field gets the focus again. */
  askName(message) {
    this.showError(message);
    const input = $("name");
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  showError(message) {
    $("join-error").textContent = message || "";
    this.setBusy(false);
  }

  setBusy(busy) {
    this.busy = busy;
    const button = $("join");
    button.disabled = busy;
    const idle = this.retrying ? "retry" : this.leading ? "leader_start_button" : "join_button";
    button.textContent = busy ? t("connecting") : t(idle);
  }

  async submit() {
    if (this.busy) return;
    const nameInput = $("name");
    const name = cleanName(nameInput.value);
    nameInput.value = name;
    if (!name) {
      this.showError(t("name_missing"));
      nameInput.setAttribute("aria-invalid", "true");
      nameInput.focus();
      return;
    }
    nameInput.removeAttribute("aria-invalid");
    const rules = $("rules");
    if (!rules.checked) {
      this.showError(t("rules_missing"));
      rules.focus();
      return;
    }
    try {
      sessionStorage.setItem(NAME_KEY, name);
    } catch (_) {
      /* fine */
    }
    const passwordRow = $("password-row");
    const password = passwordRow.hidden ? null : $("room-password").value || null;
    let leader = null;
    if (this.leading) {
      // a leader who forgot the password must hear so, not wait in their own lobby
      const groupInput = $("leader-group");
      const passwordInput = $("leader-password");
      const group = groupInput.value.trim();
      const groupPassword = passwordInput.value;
      for (const input of [groupInput, passwordInput]) input.removeAttribute("aria-invalid");
      if (!group || !groupPassword) {
        const missing = !group ? groupInput : passwordInput;
        missing.setAttribute("aria-invalid", "true");
        this.showError(t("leader_missing"));
        missing.focus();
        return;
      }
      leader = { group, password: groupPassword };
    }
    this.showError("");
    $("password-error").textContent = "";
    this.setBusy(true);
    await this.devicesReady.catch(() => {});
    // nothing is captured while waiting: the devices go off, the choice is kept
    this.hide();
    this.media.stopAll();
    if (this.onSubmit) this.onSubmit({ name, password, leader });
  }

  /** The preview is not needed in the room (the room shows its own tile). */
  hide() {
    this.preview.srcObject = null;
    if (this.meterSource) this.meterSource.disconnect();
    this.meterSource = null;
    this.meterTrack = null;
  }
}

function fillSelect(select, devices, selectedId, kindLabel) {
  select.replaceChildren();
  select.append(el("option", { text: t("device_none"), attrs: { value: "" } }));
  devices.forEach((d, i) => {
    const label = d.label || `${kindLabel} ${i + 1}`;
    select.append(el("option", { text: label, attrs: { value: d.id } }));
  });
  select.value = devices.some((d) => d.id === selectedId) ? selectedId : "";
}
