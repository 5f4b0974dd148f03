/**
 * The signalling connection: one WebSocket to /ws speaking docs/protocol.md.
 *
 * It says `hello`, hands every incoming message to handlers registered by type, and
 * reconnects by itself when the socket drops unexpectedly (network blip, server
 * restart). After a reconnect it calls `onReconnect(hello)` so the page can `join`
 * again with its resume token. `close()` ends it for good.
 *
 * A dead server or network is noticed by the page itself, not after TCP gives up: a
 * `ping` goes out every PING_MS and anything the server sends counts as an answer.
 * One ping unanswered calls `onSuspect()` (the page says "reconnecting" at once, well
 * within 3 s of the cut); two unanswered and DEAD_MS of silence drop the socket and
 * start reconnecting. A connect attempt that gets no `hello` within CONNECT_TIMEOUT_MS
 * is given up, so a cut network does not leave it hanging for minutes.
 *
 * Each step of a drop and a reconnect leaves a `performance.mark("kreis:…")` (no data,
 * only names and times): the cluster failover test prints them as a timeline.
 */

import { currentLang } from "./i18n.js";

const PING_MS = 1200;
const DEAD_MS = 5000;
const CONNECT_TIMEOUT_MS = 5000;
const RECONNECT_STEPS_MS = [300, 700, 1500, 2500, 3000];
const SERVICE_RESTART_MS = 60;
// longer than the server's resume grace (default 2 min): a page that comes back
// within it goes straight into the room again
const RECONNECT_GIVE_UP_MS = 150_000;

export class Signalling {
  constructor(url = defaultUrl()) {
    this.url = url;
    this.ws = null;
    this.hello = null;
    this.handlers = new Map();
    this.onReconnect = null;
    this.onDisconnect = null;
    this.onGiveUp = null;
    this.onSuspect = null;
    this.onRecover = null;
    this.closedForGood = false;
    this.lastHeard = 0;
    this.misses = 0;
    this.awaitingPong = false;
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
      const giveUp = setTimeout(() => {
        if (greeted) return;
        if (this.ws === ws) this.ws = null;
        try {
          ws.close();
        } catch (_) {
          /* already closing */
        }
        reject(new Error("no hello in time"));
      }, CONNECT_TIMEOUT_MS);
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
        if (this.ws === ws) this.heard();
        if (!greeted && msg.type === "hello") {
          greeted = true;
          clearTimeout(giveUp);
          this.hello = msg;
          performance.mark("kreis:hello");
          this.startPing();
          resolve(msg);
          return;
        }
        this.dispatch(msg);
      });
      ws.addEventListener("close", (ev) => {
        clearTimeout(giveUp);
        if (this.ws !== ws) return;
        performance.mark("kreis:socket-closed");
        this.stopPing();
        this.ws = null;
        if (!greeted) {
          reject(new Error("closed before hello"));
          return;
        }
        // 1012: the server asks us to come back (its link to the room's node broke,
        // or it restarts): at once, a little spread out, then with growing pauses
        if (!this.closedForGood) this.dropped(ev.code === 1012 ? SERVICE_RESTART_MS * (1 + Math.random()) : null);
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
    this.heard();
    this.pingTimer = setInterval(() => this.pingTick(), PING_MS);
  }

  /** Anything from the server: it is alive. */
  heard() {
    this.lastHeard = Date.now();
    this.awaitingPong = false;
    if (this.misses > 0) {
      this.misses = 0;
      if (this.onRecover) this.onRecover();
    }
  }

  pingTick() {
    if (this.awaitingPong) {
      // Counted only for pings really sent: a throttled timer in a hidden tab sends
      // none, so it cannot take its own silence for a dead server.
      this.misses += 1;
      if (this.misses === 1) performance.mark("kreis:suspect");
      if (this.misses === 1 && this.onSuspect) this.onSuspect();
      if (this.misses >= 2 && Date.now() - this.lastHeard > DEAD_MS) {
        this.lost();
        return;
      }
    }
    if (this.sendRaw({ type: "ping" })) this.awaitingPong = true;
  }

  /** The server stopped answering: give the socket up and reconnect. */
  lost() {
    performance.mark("kreis:lost");
    const ws = this.ws;
    this.ws = null;
    this.stopPing();
    this.misses = 0;
    if (ws) {
      try {
        ws.close();
      } catch (_) {
        /* already closing */
      }
    }
    this.dropped();
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.awaitingPong = false;
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
    performance.mark("kreis:connecting");
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
