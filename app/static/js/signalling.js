/**
 * The signalling connection: one WebSocket to /ws speaking docs/protocol.md.
 *
 * It says `hello`, hands every incoming message to handlers registered by type, and
 * reconnects by itself when the socket drops unexpectedly (network blip, server
 * restart). After a reconnect it calls `onReconnect(hello)` so the page can `join`
 * again with its resume token. `close()` ends it for good.
 */

import { currentLang } from "./i18n.js";

const PING_SECONDS = 20;
const RECONNECT_STEPS_MS = [300, 700, 1500, 2500, 4000];
const RECONNECT_GIVE_UP_MS = 90_000;

export class Signalling {
  constructor(url = defaultUrl()) {
    this.url = url;
    this.ws = null;
    this.hello = null;
    this.handlers = new Map();
    this.onReconnect = null;
    this.onDisconnect = null;
    this.onGiveUp = null;
    this.closedForGood = false;
    this.pingTimer = null;
    this.retryTimer = null;
    this.dropSince = 0;
    this.attempt = 0;
  }

  /** Registers `fn(msg)` for messages of `type` ("*" sees all). */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
  }

  /** Removes a handler added with on(). */
  off(type, fn) {
    const list = this.handlers.get(type);
    if (list) this.handlers.set(type, list.filter((f) => f !== fn));
  }

  /** Opens the socket and resolves with the server's `hello`. */
  connect() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        reject(err);
        return;
      }
      this.ws = ws;
      let greeted = false;
      ws.addEventListener("open", () => {
        this.sendRaw({ type: "hello", version: 1, kind: "browser", lang: currentLang() });
      });
      ws.addEventListener("message", (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        if (!msg || typeof msg.type !== "string") return;
        if (!greeted && msg.type === "hello") {
          greeted = true;
          this.hello = msg;
          this.startPing();
          resolve(msg);
          return;
        }
        this.dispatch(msg);
      });
      ws.addEventListener("close", () => {
        this.stopPing();
        if (this.ws !== ws) return;
        this.ws = null;
        if (!greeted) {
          reject(new Error("closed before hello"));
          return;
        }
        if (!this.closedForGood) this.dropped();
      });
      ws.addEventListener("error", () => {
        /* a close event follows; handled there */
      });
    });
  }

  dispatch(msg) {
    for (const fn of this.handlers.get(msg.type) || []) fn(msg);
    for (const fn of this.handlers.get("*") || []) fn(msg);
  }

  /** Sends one protocol message; false when the socket is not open. */
  send(msg) {
    return this.sendRaw(msg);
  }

  sendRaw(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  get connected() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN && !!this.hello;
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => this.sendRaw({ type: "ping" }), PING_SECONDS * 1000);
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** The socket went away without us asking: try again with growing pauses. */
  dropped(delayMs = null) {
    if (this.closedForGood) return;
    if (!this.dropSince) {
      this.dropSince = Date.now();
      this.attempt = 0;
      if (this.onDisconnect) this.onDisconnect();
    }
    if (Date.now() - this.dropSince > RECONNECT_GIVE_UP_MS) {
      this.closedForGood = true;
      if (this.onGiveUp) this.onGiveUp();
      return;
    }
    const step = RECONNECT_STEPS_MS[Math.min(this.attempt, RECONNECT_STEPS_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.retry(), delayMs ?? step);
  }

  async retry() {
    if (this.closedForGood) return;
    try {
      const hello = await this.connect();
      this.dropSince = 0;
      if (this.onReconnect) this.onReconnect(hello);
    } catch (_) {
      this.dropped();
    }
  }

  /** The server announced a restart: drop the socket ourselves and come back later. */
  expectRestart(retryAfterSeconds) {
    const ws = this.ws;
    this.ws = null;
    this.stopPing();
    if (ws) ws.close();
    const wait = Math.max(0.3, Math.min(Number(retryAfterSeconds) || 2, 30)) * 1000;
    this.dropped(wait);
  }

  /** Ends the connection for good (left, removed, room ended). */
  close() {
    this.closedForGood = true;
    clearTimeout(this.retryTimer);
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }
}

function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** Waits for the first of `types` on `sig` (or an `error`), with a timeout. */
export function nextMessage(sig, types, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sig.off("*", watch);
      fn(value);
    };
    const timer = setTimeout(() => finish(reject, new Error("timeout")), timeoutMs);
    const watch = (msg) => {
      if (types.includes(msg.type) || msg.type === "error") finish(resolve, msg);
    };
    sig.on("*", watch);
  });
}
