/**
 * The page's side of the frame worker (worker.js): one Worker per page, the transforms
 * on every sender and receiver, commands in order, and the frame counters.
 *
 * Both browser APIs: `RTCRtpScriptTransform` where it exists, else the older
 * `createEncodedStreams` (`legacy`), whose RTCPeerConnections need
 * `encodedInsertableStreams` (`rtcConfiguration`).
 */

import { hasEncodedStreams, hasScriptTransform, supported } from "./support.js";

export class FrameWorker {
  /** `legacy`: true, false or "auto" (only where RTCRtpScriptTransform is missing). */
  constructor({ legacy = "auto", graceMs = 5000 }) {
    this.useLegacy = legacy === true || (legacy === "auto" && !hasScriptTransform());
    this.isSupported = supported() && (!this.useLegacy || hasEncodedStreams());
    this.receivers = new WeakMap();
    this.senders = new WeakSet();
    this.nextRid = 1;
    this.statsWaiters = new Map();
    this.nextReq = 1;
    this.worker = null;
    if (this.isSupported) {
      this.worker = new Worker(new URL("./worker.js", import.meta.url), {
        type: "module",
        name: "kreis-e2ee",
      });
      this.worker.onmessage = (event) => this.gotMessage(event.data);
      this.post({ type: "config", graceMs, defaultMode: "on" });
    }
  }

  /** Adds what the legacy path needs (`encodedInsertableStreams`) to an RTCConfiguration. */
  rtcConfiguration(config = {}) {
    if (this.isSupported && this.useLegacy) return { ...config, encodedInsertableStreams: true };
    return config;
  }

  attachSender(sender, kind) {
    if (!this.isSupported || this.senders.has(sender)) return false;
    this.senders.add(sender);
    this.attach(sender, { role: "sender", kind });
    return true;
  }

  /** Maps a receiver to its publisher; call again when a renegotiation remaps it. */
  attachReceiver(receiver, participantId, kind) {
    if (!this.isSupported) return false;
    const known = this.receivers.get(receiver);
    if (known !== undefined) {
      this.post({ type: "mapReceiver", rid: known, participantId });
      return true;
    }
    const rid = this.nextRid++;
    this.receivers.set(receiver, rid);
    this.post({ type: "mapReceiver", rid, participantId });
    this.attach(receiver, { role: "receiver", kind, rid, participantId });
    return true;
  }

  attach(target, options) {
    if (this.useLegacy) {
      const { readable, writable } = target.createEncodedStreams();
      this.worker.postMessage({ type: "stream", readable, writable, options }, [
        readable,
        writable,
      ]);
    } else {
      target.transform = new RTCRtpScriptTransform(this.worker, options);
    }
  }

  /** One command to the worker (worker.js `handle`); handled strictly in order. */
  post(msg) {
    this.worker?.postMessage(msg);
  }

  /** The worker's counters, as it sends them (worker.js `stats`); null without a worker. */
  async stats() {
    if (!this.worker) return null;
    const reqId = this.nextReq++;
    return new Promise((resolve) => {
      this.statsWaiters.set(reqId, resolve);
      this.post({ type: "stats", reqId });
    });
  }

  gotMessage(msg) {
    if (msg?.type === "stats") {
      const resolve = this.statsWaiters.get(msg.reqId);
      this.statsWaiters.delete(msg.reqId);
      resolve?.(msg.stats);
    }
  }

  close() {
    this.worker?.terminate();
    this.worker = null;
  }
}
