/**
 * The participant's own devices: microphone, camera and screen.
 *
 * Muting happens here, on the device: a muted microphone or a camera switched off has
 * its track stopped (the camera light goes out) and nothing is sent at all. Turning it
 * back on asks the device for a fresh track. Callers hand the tracks to the up
 * connection (peers.js) with replaceTrack.
 */

const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export class LocalMedia {
  constructor() {
    this.mic = null;
    this.camera = null;
    this.screen = null;
    this.micDeviceId = "";
    this.cameraDeviceId = "";
    /** What the person wants: false means "off", even while a device is missing. */
    this.micWanted = true;
    this.cameraWanted = true;
    this.onScreenEnded = null;
  }

  get micOn() {
    return !!this.mic && this.mic.readyState === "live";
  }

  get cameraOn() {
    return !!this.camera && this.camera.readyState === "live";
  }

  get screenOn() {
    return !!this.screen && this.screen.readyState === "live";
  }

  /** Starts whatever the person wants on; a missing device is not an error. */
  async start() {
    const wantAudio = this.micWanted;
    const wantVideo = this.cameraWanted;
    if (!wantAudio && !wantVideo) return;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: wantAudio ? audioConstraints(this.micDeviceId) : false,
        video: wantVideo ? videoConstraints(this.cameraDeviceId) : false,
      });
      this.mic = stream.getAudioTracks()[0] || null;
      this.camera = stream.getVideoTracks()[0] || null;
    } catch (_) {
      // one of the two may be missing or refused: try each alone
      if (wantAudio) this.mic = await this.open("audio");
      if (wantVideo) this.camera = await this.open("video");
    }
    this.rememberDevices();
  }

  async open(kind) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(
        kind === "audio"
          ? { audio: audioConstraints(this.micDeviceId) }
          : { video: videoConstraints(this.cameraDeviceId) },
      );
      return (kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks())[0] || null;
    } catch (_) {
      return null;
    }
  }

  rememberDevices() {
    if (this.mic) this.micDeviceId = this.mic.getSettings().deviceId || this.micDeviceId;
    if (this.camera) this.cameraDeviceId = this.camera.getSettings().deviceId || this.cameraDeviceId;
  }

  /** {audio: [{id, label}], video: [...]}; labels are only known after permission. */
  async devices() {
    const result = { audio: [], video: [] };
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return result;
    const list = await navigator.mediaDevices.enumerateDevices();
    for (const d of list) {
      if (d.kind === "audioinput") result.audio.push({ id: d.deviceId, label: d.label });
      if (d.kind === "videoinput") result.video.push({ id: d.deviceId, label: d.label });
    }
    return result;
  }

  /** Turns the microphone on or off; returns the new track (null when off). */
  async setMic(on) {
    this.micWanted = on;
    if (!on) {
      stopTrack(this.mic);
      this.mic = null;
    } else if (!this.micOn) {
      this.mic = await this.open("audio");
      this.rememberDevices();
    }
    return this.mic;
  }

  /** Turns the camera on or off; returns the new track (null when off). */
  async setCamera(on) {
    this.cameraWanted = on;
    if (!on) {
      stopTrack(this.camera);
      this.camera = null;
    } else if (!this.cameraOn) {
      this.camera = await this.open("video");
      this.rememberDevices();
    }
    return this.camera;
  }

  /** Switches to another microphone (id "" = off). Returns the new track. */
  async chooseMic(deviceId) {
    if (!deviceId) return this.setMic(false);
    this.micDeviceId = deviceId;
    stopTrack(this.mic);
    this.mic = null;
    return this.setMic(true);
  }

  /** Switches to another camera (id "" = off). Returns the new track. */
  async chooseCamera(deviceId) {
    if (!deviceId) return this.setCamera(false);
    this.cameraDeviceId = deviceId;
    stopTrack(this.camera);
    this.camera = null;
    return this.setCamera(true);
  }

  /** Asks the browser for a screen or window; null when the person cancels. */
  async startScreen() {
    if (this.screenOn) return this.screen;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10 } }, audio: false });
      this.screen = stream.getVideoTracks()[0] || null;
    } catch (_) {
      this.screen = null;
    }
    if (this.screen) {
      this.screen.addEventListener("ended", () => {
        this.screen = null;
        if (this.onScreenEnded) this.onScreenEnded();
      });
    }
    return this.screen;
  }

  stopScreen() {
    stopTrack(this.screen);
    this.screen = null;
  }

  /** Stops every device (leaving, or the page goes away). */
  stopAll() {
    for (const track of [this.mic, this.camera, this.screen]) stopTrack(track);
    this.mic = this.camera = this.screen = null;
  }
}

function stopTrack(track) {
  if (track) track.stop();
}

function audioConstraints(deviceId) {
  return deviceId ? { ...AUDIO_CONSTRAINTS, deviceId: { exact: deviceId } } : { ...AUDIO_CONSTRAINTS };
}

function videoConstraints(deviceId) {
  return deviceId ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: deviceId } } : { ...VIDEO_CONSTRAINTS };
}
