/**
 * The room page (/<slug>): walks a person from the pre-join screen through "waiting
 * for the leader" and the lobby into the meeting, and out again.
 *
 * It owns the signalling connection and the session's small state (phase, resume
 * token, the leader sign-in kept in memory for reconnects). On a dropped socket it
 * reconnects and joins again with the resume token, so a drop (up to the server's
 * grace time, 2 min by default) or a server restart does not send anyone back through
 * the lobby; a leader's token starts the room again after a restart.
 *
 * The resume token lives in this tab's sessionStorage: it survives a reload and a
 * server restart, stays with this one tab (a second tab is a second seat, never a
 * copy of this one), is never sent by the browser on its own (unlike a cookie) and is
 * gone when the tab closes. It is removed as soon as the meeting ends for this page.
 */

import { Signalling, nextMessage } from "./signalling.js";
import { LocalMedia } from "./media.js";
import { Prejoin } from "./prejoin.js";
import { LobbyView } from "./lobby.js";
import { RoomView } from "./room.js";
import { renderEnding } from "./endings.js";
import { $, showScreen, notice, clearNotice } from "./dom.js";
import { t, applyTexts, bindLangButton, errorText, onLangChange, currentLang } from "./i18n.js";
import { mediaHooks } from "./peers.js";
import { installE2EE } from "../e2ee/install.js";
import { fragmentFor, newRoomSecret, readFragment } from "../e2ee/trust.js";

const slug = decodeURIComponent(location.pathname.replace(/^\/+|\/+$/g, "")).toLowerCase();

/** The invite code from the room link (`/<slug>?k=<code>`), or null without one. */
function inviteCode() {
  const code = new URLSearchParams(location.search).get("k");
  return code ? code : null;
}

const session = {
  phase: "prejoin", // prejoin | joining | waiting_leader | lobby | room | ended
  name: "",
  password: null,
  leader: null, // {group, password, ticket} while signed in, memory only
  loggedIn: false,
  resume: null,
  joined: null,
  endReason: null,
  restarting: false, // a leader starting its room again after a restart
  rejoining: false, // a join after a reconnect is on its way
  rejoinRetries: 0, // joins after this reconnect the server could not route yet
  leaderPresent: true, // in the lobby: whether anyone is there to let us in
};

const RESUME_KEY = "kreis.resume";
const LIVE_PHASES = ["room", "lobby", "waiting_leader", "joining"];
const REJOIN_RETRY_MS = 1000;
const REJOIN_RETRIES = 10;

/** The resume token for this room from this tab's sessionStorage, or null. */
function storedResume() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(RESUME_KEY) || "null");
    return saved && saved.room === slug && typeof saved.token === "string" ? saved.token : null;
  } catch (_) {
    return null;
  }
}

function keepResume(token) {
  session.resume = token || null;
  try {
    if (token) sessionStorage.setItem(RESUME_KEY, JSON.stringify({ room: slug, token }));
    else sessionStorage.removeItem(RESUME_KEY);
  } catch (_) {
    /* storage refused (private mode quota): the token stays in memory only */
  }
}

session.resume = storedResume();

const sig = new Signalling();
// End-to-end encryption: frame transforms on every sender and receiver (via mediaHooks),
// following the room's setting live; state and safety words in #e2ee-status.
// The room secret lives in the link's fragment (`#s=…`), which browsers never send.
const fragment = readFragment(location.hash);
const e2ee = installE2EE({
  sig,
  mediaHooks,
  statusElement: $("e2ee-status"),
  bannerElement: $("e2ee-banner"),
  fragment: location.hash,
  lang: currentLang,
  onLangChange,
  onRoomSecret: (secret, required) => {
    // pasted from the full invite link: kept in this tab's address (never sent), shown to leaders
    fragment.secret = secret;
    fragment.required = fragment.required || required;
    history.replaceState(history.state, "", location.pathname + location.search + fragmentFor(secret, fragment.required));
    room.leader.secret = secret;
    room.leader.renderInvite();
  },
});
const media = new LocalMedia();
const prejoin = new Prejoin(media);
const lobby = new LobbyView(sig);
const room = new RoomView(sig, media);
room.leader.secret = fragment.secret; // a second leader opened the full link

function setPhase(phase) {
  if (phase !== session.phase) performance.mark(`kreis:phase-${phase}`); // a timeline for tests
  session.phase = phase;
  document.body.dataset.phase = phase;
}

/** Connects if needed, signs the leader in, starts the room if needed, then joins. */
async function start({ name, password, leader }) {
  session.name = name;
  session.password = password;
  if (leader) session.leader = leader;
  setPhase("joining");
  try {
    if (!sig.connected) {
      sig.closedForGood = false;
      await sig.connect();
      session.loggedIn = false;
    }
    if (session.leader && !session.loggedIn) {
      if (!(await signIn())) return;
      if (!(await startRoom())) return;
    }
    sendJoin(session.resume);
  } catch (_) {
    setPhase("prejoin");
    prejoin.showError(t("err_connection"));
  }
}

/** Signs the leader in: with the ticket from the last `login_ok` when there is one
 * (after a reconnect: one HMAC on the server instead of scrypt, so the room is back
 * sooner after a failover), else, or when it is refused, with the password. */
async function signIn() {
  const { group, password, ticket } = session.leader;
  let answer = ticket ? await login({ group, ticket }) : null;
  if (!answer || answer.type === "error") answer = await login({ group, password });
  if (answer.type === "error") {
    session.leader = null;
    setPhase("prejoin");
    prejoin.showError(errorText(answer));
    return false;
  }
  session.leader.ticket = answer.ticket || null; // memory only, like the password
  session.loggedIn = true;
  return true;
}

function login(fields) {
  const waiting = nextMessage(sig, ["login_ok"]);
  sig.send({ type: "login", ...fields });
  return waiting;
}

async function startRoom() {
  const waiting = nextMessage(sig, ["room_created"]);
  sig.send({ type: "create_room", slug, lobby: true, password: null, dial_in: false });
  const answer = await waiting;
  if (answer.type === "error" && answer.code !== "room_exists") {
    setPhase("prejoin");
    prejoin.showError(errorText(answer));
    return false;
  }
  // a short or common room name is easy to guess: tell the leader once, calmly
  if (answer.type === "room_created" && (answer.warning === "short" || answer.warning === "guessable")) {
    notice(t(`slug_warning_${answer.warning}`), { seconds: 12 });
  }
  if (answer.type === "room_created" && !fragment.secret) {
    // We started the room: we make its secret. Other leaders open the full link.
    fragment.secret = newRoomSecret();
    history.replaceState(history.state, "", location.pathname + location.search + fragmentFor(fragment.secret, fragment.required));
    await e2ee.setRoomSecret(fragment.secret);
  }
  room.leader.secret = fragment.secret;
  if (answer.type === "room_created" && answer.url) showInvite(answer.url);
  return true;
}

/** The leader's own page becomes the invite link (so a reload keeps it), shown to copy. */
function showInvite(url) {
  try {
    const link = new URL(String(url), location.href);
    // only this room's path and the invite query: never another origin or page
    if (link.pathname.replace(/^\/+|\/+$/g, "").toLowerCase() === slug) {
      history.replaceState(history.state, "", link.pathname + link.search + location.hash);
    }
  } catch (_) {
    /* no usable link: the address bar stays as it is */
  }
  room.leader.setInvite(url);
}

function sendJoin(resume) {
  performance.mark("kreis:join-sent");
  const join = { type: "join", room: slug, name: session.name, password: session.password, resume: resume || null };
  const invite = inviteCode();
  if (invite) join.invite = invite; // older servers refuse unknown fields: only when there is one
  sig.send(join);
}

/** After a reconnect: sign in again if we lead, then join with the resume token
 * (which brings the room back after a server restart when we lead it). */
async function rejoin() {
  if (!["joining", "waiting_leader", "lobby", "room"].includes(session.phase)) return;
  session.restarting = false;
  try {
    if (session.leader) {
      session.loggedIn = false;
      if (!(await signIn())) return;
    }
    // A lobby entrant has no token (it was never admitted): it knocks again.
    sendJoin(session.phase === "lobby" ? null : session.resume);
  } catch (_) {
    sig.dropped();
  }
}

function end(reason, { closeSocket = true } = {}) {
  if (closeSocket) sig.close();
  e2ee.reset(); // no media key outlives the meeting
  // camera and microphone go off with the meeting: a lit camera light after leaving
  // would be alarming; "Join again" asks for them afresh
  room.teardown({ stopDevices: true });
  session.endReason = reason;
  keepResume(null);
  session.joined = null;
  setPhase("ended");
  renderEnded();
  showScreen("screen-ended");
}

function renderEnded() {
  const helpLine = (sig.hello && sig.hello.help_line) || "";
  renderEnding({ reason: session.endReason, leader: room.leftAsLeader, helpLine });
}

// ---- what the server tells us -------------------------------------------------

sig.on("waiting_for_leader", async () => {
  const wasIn = session.phase === "room";
  setPhase("waiting_leader");
  if (session.leader && session.loggedIn && !session.restarting) {
    // We lead this room and it is gone (a restart, and our token had expired): we
    // start it again ourselves instead of waiting for ourselves.
    session.restarting = true;
    await startRoom(); // the server seats our waiting join once the room is live
    return;
  }
  if (wasIn) room.teardown();
  lobby.showWaitingForLeader();
  if (wasIn || session.resume) notice(t("reconnect_waiting_leader"), { seconds: 0 });
});

/** The lobby text says honestly whether anyone is there to let us in. */
function renderLobbyLeader() {
  if (session.phase === "lobby" && session.leaderPresent === false) {
    $("wait-text").textContent = t("lobby_text_no_leader");
  }
}

sig.on("lobby_status", (msg) => {
  performance.mark(`kreis:lobby-${msg.state}`);
  if (msg.state === "waiting") {
    if (session.phase === "room") room.teardown();
    setPhase("lobby");
    session.leaderPresent = msg.leader_present !== false;
    lobby.showLobby();
    renderLobbyLeader();
    return;
  }
  end(msg.state === "ended" ? "ended" : msg.state);
});

sig.on("resume_token", (msg) => {
  if (msg.room === slug && session.phase === "room") keepResume(msg.token);
});

sig.on("leader_state", (msg) => {
  if (session.phase !== "room" || !session.joined) return;
  if (msg.successor && msg.successor === session.joined.id) {
    notice(t("leader_left_you"), { seconds: 12 });
  } else if (msg.successor) {
    const next = room.participants.find((p) => p.id === msg.successor);
    notice(t("leader_left_successor", { name: next ? next.name : "?" }), { seconds: 12 });
  } else if (msg.present === false) {
    notice(t("leader_left"), { seconds: 0 });
  } else {
    notice(t("leader_back"));
  }
});

sig.on("joined", async (msg) => {
  performance.mark("kreis:joined");
  const wasAway = sig.dropSince === 0 && session.rejoining;
  session.rejoining = false;
  keepResume(msg.resume || null);
  if (wasAway) notice(t("back_in_room"));
  session.joined = msg;
  setPhase("room");
  prejoin.hide();
  showScreen("screen-room");
  await room.enter(msg, (sig.hello && sig.hello.ice_servers) || []);
});

sig.on("participants", (msg) => room.gotParticipants(msg));
sig.on("down_offer", (msg) => room.gotDownOffer(msg));
sig.on("up_answer", (msg) => room.gotUpAnswer(msg));
sig.on("media_restart", () => {
  if (session.phase === "room") room.restartMedia();
});
sig.on("lobby_queue", (msg) => room.leader.gotLobbyQueue(msg));
sig.on("room_state", (msg) => room.leader.gotRoomState(msg));
sig.on("mute_request", (msg) => room.gotMuteRequest(msg));
sig.on("removed", () => end("removed"));
sig.on("room_ended", () => end("room"));
sig.on("chat", (msg) => {
  if (session.phase === "lobby") lobby.gotChat(msg);
  else if (msg.lobby) room.leader.gotLobbyChat(msg);
  else room.gotChat(msg);
});

sig.on("server_restart", (msg) => {
  notice(t("server_restart"), { seconds: 0 });
  sig.expectRestart(msg.retry_after);
});

sig.on("error", (msg) => {
  performance.mark(`kreis:error-${msg.code}`);
  if (msg.ref === "login" || msg.ref === "create_room") return; // answered in start()
  if (msg.ref === "set_e2ee" || msg.ref === "set_dial_in") {
    room.leader.gotError(msg); // the switch goes back; phones_present asks first
    return;
  }
  const retryable = msg.ref === "join" && msg.code === "internal" && session.rejoining;
  if (retryable && LIVE_PHASES.includes(session.phase) && session.rejoinRetries < REJOIN_RETRIES) {
    session.rejoinRetries += 1;
    // Coming back after a drop, the server could not reach the room's node (it may be
    // moving to another one): knock again in a moment instead of starting over.
    setTimeout(rejoin, REJOIN_RETRY_MS);
    return;
  }
  if (session.phase === "joining" || (msg.ref === "join" && session.phase !== "room")) {
    if (msg.code === "already_joined") return;
    setPhase("prejoin");
    prejoin.show();
    const aboutPassword = ["password_required", "bad_room_password"].includes(msg.code);
    if (msg.code === "room_closed") {
      // one calm answer for "not started", "locked" and "password": offer both ways on
      prejoin.offerRetry(errorText(msg));
    } else if (msg.code === "reserved_name") {
      prejoin.askName(errorText(msg));
    } else if (aboutPassword || (msg.code === "rate_limited" && !$("password-row").hidden)) {
      prejoin.askPassword(errorText(msg));
    } else {
      prejoin.showError(errorText(msg));
    }
    return;
  }
  if (["bad_sdp", "internal", "not_allowed", "rate_limited"].includes(msg.code)) notice(errorText(msg), { urgent: true });
});


let reconnectTicker = null;

/** While the server is out of reach the notice says so, and for how long. */
function showReconnecting() {
  if (!LIVE_PHASES.includes(session.phase)) return;
  notice(t("reconnecting"), { seconds: 0, urgent: true });
  document.body.dataset.connection = "reconnecting";
  clearInterval(reconnectTicker);
  const since = Date.now();
  reconnectTicker = setInterval(() => {
    const s = Math.round((Date.now() - since) / 1000);
    if (s >= 5 && LIVE_PHASES.includes(session.phase)) notice(t("reconnect_trying", { s }), { seconds: 0, urgent: true });
  }, 1000);
}

function stopReconnecting() {
  clearInterval(reconnectTicker);
  reconnectTicker = null;
  delete document.body.dataset.connection;
}

// one unanswered ping: say so at once; the socket is given up a few seconds later
sig.onSuspect = showReconnecting;
sig.onRecover = () => {
  if (sig.dropSince) return;
  stopReconnecting();
  clearNotice();
};

sig.onDisconnect = () => {
  if (!reconnectTicker) showReconnecting();
};

sig.onReconnect = () => {
  stopReconnecting();
  session.rejoining = true;
  session.rejoinRetries = 0;
  if (session.phase === "room") notice(t("reconnect_rejoining"), { seconds: 0 });
  else clearNotice();
  rejoin();
};

sig.onGiveUp = () => {
  stopReconnecting();
  if (session.phase !== "ended" && session.phase !== "prejoin") end("lost", { closeSocket: false });
};

room.onLeave = () => end("left", { closeSocket: false });
room.onMediaFailed = () => {
  if (session.phase === "room") sig.expectRestart(0.3);
};

lobby.onCancel = () => {
  sig.send({ type: "leave" });
  setPhase("prejoin");
  prejoin.show();
};

prejoin.onSubmit = (form) => start(form);

$("rejoin").addEventListener("click", () => {
  setPhase("prejoin");
  prejoin.show();
});

// ---- a read-only hook for tests and debugging (no secrets, nothing to change) --

Object.defineProperty(window, "kreis", {
  value: Object.freeze({
    get state() {
      return session.phase;
    },
    get me() {
      return session.joined ? { id: session.joined.id, role: session.joined.role, room: session.joined.room } : null;
    },
    get participants() {
      return room.participants.map((p) => ({ ...p }));
    },
    get media() {
      return { mic: media.micOn, camera: media.cameraOn, screen: media.screenOn };
    },
    stats: () => room.stats(),
  }),
  writable: false,
  configurable: false,
});

// ---- page start ---------------------------------------------------------------

function boot() {
  if (!slug || slug.includes("/")) {
    location.replace("/");
    return;
  }
  applyTexts();
  bindLangButton($("lang"));
  onLangChange(() => {
    if (session.phase === "ended") renderEnded();
    renderLobbyLeader();
  });
  $("room-name").textContent = slug;
  prejoin.show();
  window.addEventListener("pagehide", () => {
    sig.close();
    media.stopAll();
  });
}

boot();
