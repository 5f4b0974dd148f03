/**
 * Plugs the E2EE engine into the web client: its `mediaHooks` (peers.js), its
 * signalling connection, and one status line that shows the state and the safety words.
 *
 *   import { installE2EE } from "/static/e2ee/install.js";
 *   const e2ee = installE2EE({ sig, mediaHooks, statusElement: $("e2ee-status"),
 *                              bannerElement: $("e2ee-banner"), fragment: location.hash,
 *                              lang: currentLang, onLangChange });
 *
 * The status line shows the state, who is not encrypted or not verified, the safety
 * number (with what to do if it differs, and a prompt when it changed) and that chat and
 * names are not end-to-end encrypted. The banner appears when encryption was switched
 * off after this page was encrypted; nothing clear is sent or played until the person
 * confirms there (never, when the link's fragment says `e2ee=1`).
 *
 * Call it once, before the first `joined`. The engine follows the room's `settings.e2ee`;
 * the leader switches it with `set_e2ee` and every browser follows live. When the person
 * leaves on their own, call `e2ee.reset()` (removal and room end are seen by the engine).
 */

import { createE2EE, preferE2eeCodecs } from "./index.js";
import { readFragment } from "./trust.js";

const KIND_OF_SOURCE = { mic: "audio", camera: "video", screen: "video" };

const TEXTS = {
  on: ["End-to-end encrypted", "Ende-zu-Ende-verschlüsselt"],
  unable: [
    "This browser cannot encrypt end-to-end. Please use a current browser.",
    "Dieser Browser kann nicht Ende-zu-Ende verschlüsseln. Bitte nutze einen aktuellen Browser.",
  ],
  words: ["Safety number, compare it out loud:", "Sicherheitsnummer, vergleicht sie laut:"],
  differ: [
    "If it differs on any screen, someone may be listening in: leave and tell the leader another way (by phone).",
    "Weicht sie auf einem Bildschirm ab, hört vielleicht jemand mit: verlasst den Raum und sagt es der Leitung auf anderem Weg (Telefon).",
  ],
  pending: [
    "Safety number: waiting for everyone's check …",
    "Sicherheitsnummer: warte auf die Prüfung aller …",
  ],
  again: [
    "The safety number changed (someone came or left): compare it again.",
    "Die Sicherheitsnummer hat sich geändert (jemand kam oder ging): vergleicht sie neu.",
  ],
  compared: ["Compared", "Verglichen"],
  clear: [
    "Not encrypted: {n} participant(s)",
    "Nicht verschlüsselt: {n} Teilnehmende",
  ],
  unverified: [
    "Not verified, they get no keys: {names}",
    "Nicht bestätigt, bekommen keine Schlüssel: {names}",
  ],
  gaveUp: [
    "The safety check was started over {n} times without a result: the server may be trying to forge it. Do not trust a safety number until someone joins or leaves.",
    "Die Sicherheitsprüfung wurde {n}-mal ohne Ergebnis neu gestartet: der Server versucht vielleicht, sie zu fälschen. Verlasst euch auf keine Sicherheitsnummer, bis jemand kommt oder geht.",
  ],
  problem: [
    "Safety check failed for: {names}. Someone may be tampering: leave and tell the leader another way.",
    "Sicherheitsprüfung fehlgeschlagen für: {names}. Vielleicht greift jemand ein: verlasst den Raum und sagt es der Leitung auf anderem Weg.",
  ],
  noSecret: [
    "Your link is incomplete (the part after # is missing): the others cannot verify you. Ask the leader for the full link.",
    "Dein Link ist unvollständig (der Teil nach # fehlt): die anderen können dich nicht bestätigen. Bitte die Leitung um den vollständigen Link.",
  ],
  pasteIntro: [
    "This page has no room secret (the part of the invite link after #), so nobody can verify you and you get no keys from those who have it. Paste the full invite link:",
    "Diese Seite hat kein Raumgeheimnis (den Teil des Einladungslinks nach #): niemand kann dich bestätigen, und wer es hat, gibt dir keine Schlüssel. Füge den vollständigen Einladungslink ein:",
  ],
  pasteLabel: ["Full invite link", "Vollständiger Einladungslink"],
  pasteButton: ["Use link", "Link verwenden"],
  pasteOtherRoom: ["That link is for another room.", "Dieser Link gehört zu einem anderen Raum."],
  pasteNoSecret: [
    "That link has no room secret (nothing after #). Ask the leader for the full link.",
    "Dieser Link hat kein Raumgeheimnis (nichts nach #). Bitte die Leitung um den vollständigen Link.",
  ],
  pasteBad: ["That is not a link.", "Das ist kein Link."],
  notCovered: [
    "Chat and names are not end-to-end encrypted.",
    "Chat und Namen sind nicht Ende-zu-Ende-verschlüsselt.",
  ],
  held: [
    "Encryption was switched off, by the leader or by the server. Your camera and microphone stay encrypted, and unencrypted video and sound are blocked, until you decide.",
    "Die Verschlüsselung wurde ausgeschaltet, von der Leitung oder vom Server. Deine Kamera und dein Mikrofon bleiben verschlüsselt, und Unverschlüsseltes wird nicht abgespielt, bis du entscheidest.",
  ],
  heldRequired: [
    "Encryption was switched off, but your link requires it: nothing unencrypted is sent or played.",
    "Die Verschlüsselung wurde ausgeschaltet, aber dein Link verlangt sie: Unverschlüsseltes wird weder gesendet noch abgespielt.",
  ],
  confirmClear: ["Continue without encryption", "Ohne Verschlüsselung weitermachen"],
};

function text(lang, key, values = {}) {
  let out = TEXTS[key][lang() === "de" ? 1 : 0];
  for (const [k, v] of Object.entries(values)) out = out.replace(`{${k}}`, String(v));
  return out;
}

/**
 * `fragment`: the page's location hash; its room secret (`#s=…`) authenticates members
 * and its `e2ee=1` makes the page refuse clear media for good. `setRoomSecret` on the
 * returned engine sets it later (the leader's page makes one when it starts a room).
 * A page without it (opened without the fragment, a leader's included) offers a field
 * to paste the full invite link; `onRoomSecret(secret, required)` then tells the page.
 */
export function installE2EE({
  sig,
  mediaHooks,
  statusElement = null,
  bannerElement = null,
  lang = () => "en",
  onLangChange = null,
  fragment = "",
  onRoomSecret = null,
}) {
  let roomOn = false;
  let participants = [];
  let selfId = null;
  let lastSas = null;
  let compareAgain = false;
  const { secret, required } = readFragment(fragment);

  const e2ee = createE2EE({
    roomSecret: secret,
    required,
    sendSignal: (msg) => sig.send(msg),
    requestKeyframe: (participant) => sig.send({ type: "keyframe", participant }),
    onStateChange: () => render(),
    onSasChange: (sas) => {
      // a changed number after one was shown: everyone must compare again
      if (sas && lastSas && sas.digits !== lastSas.digits) compareAgain = true;
      if (sas) lastSas = sas;
      render();
    },
    onTrustChange: () => render(),
    onReset: () => {
      roomOn = false;
      participants = [];
      lastSas = null;
      compareAgain = false;
      render();
    },
  });

  /** mid → publisher from the newest `down_offer`, to attach receivers before the answer. */
  let downTracks = new Map();

  mediaHooks.configure = (config) => e2ee.rtcConfiguration(config);
  mediaHooks.transceiver = (transceiver, kind, direction = null) => {
    if (!e2ee.supported()) return;
    // Live switching means no renegotiation: codecs must suit E2EE from the start.
    try {
      preferE2eeCodecs(transceiver, kind);
    } catch (err) {
      console.warn("kreis: e2ee codecs", err);
    }
    if (direction === "down" || transceiver.direction === "recvonly") {
      // Every down receiver, used or not, gets its transform before its first answer:
      // Chromium (156) ignores one set later, and a server could then play clear media
      // into it. Unmapped, it drops every frame until `receiver` below names its publisher.
      const info = downTracks.get(transceiver.mid);
      e2ee.attachReceiver(transceiver.receiver, info?.participant ?? null, kind);
    }
  };
  mediaHooks.sender = (sender, source) => {
    e2ee.attachSender(sender, KIND_OF_SOURCE[source] ?? "video");
  };
  mediaHooks.receiver = (receiver, info) => {
    e2ee.attachReceiver(receiver, info.participant, info.kind);
  };

  sig.on("*", async (msg) => {
    if (msg.type === "pong") return; // keep-alive: nothing here changes
    if (msg.type === "down_offer") {
      downTracks = new Map((msg.tracks ?? []).map((t) => [String(t.mid), t]));
      return;
    }
    if (msg.type === "joined") {
      selfId = msg.id;
      roomOn = Boolean(msg.settings?.e2ee);
    } else if (msg.type === "room_state" && msg.settings) {
      roomOn = Boolean(msg.settings.e2ee);
    } else if (msg.type === "participants") {
      participants = msg.participants ?? [];
    }
    try {
      await e2ee.handleSignal(msg);
      // Every (re)join announces our public key, so the others can send us theirs.
      if (msg.type === "joined") await e2ee.start();
    } catch (err) {
      console.warn("kreis: e2ee", err);
    }
    render();
  });

  function nameOf(id) {
    const p = participants.find((x) => x.id === id);
    return p && typeof p.name === "string" ? p.name : "?";
  }

  function span(cls, content) {
    const el = document.createElement("span");
    el.className = cls;
    el.textContent = content; // names are text, never markup
    return el;
  }

  let bannerShown = "";

  function renderBanner() {
    if (!bannerElement) return;
    const trust = e2ee.trust();
    // Rebuilt only when it changes: a button replaced under the pointer loses the click
    // (it was rebuilt with every pong, every 1.2 s).
    const shown = trust.held ? `${lang()}/${trust.required}` : "";
    if (shown === bannerShown) return;
    bannerShown = shown;
    bannerElement.replaceChildren();
    bannerElement.hidden = !trust.held;
    if (!trust.held) return;
    bannerElement.append(span("e2ee-held", text(lang, trust.required ? "heldRequired" : "held")));
    if (!trust.required) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "e2ee-confirm-clear";
      button.textContent = text(lang, "confirmClear");
      button.addEventListener("click", () => e2ee.confirmClear());
      bannerElement.append(button);
    }
  }

  // Where a page without the room secret takes the full invite link. Outside the status
  // line, which is rebuilt on every change: typing there would lose focus.
  const paste = document.createElement("form");
  paste.className = "e2ee-banner e2ee-paste";
  paste.hidden = true;
  const pasteIntro = span("e2ee-paste-intro", "");
  const pasteInput = document.createElement("input");
  pasteInput.type = "text";
  pasteInput.autocomplete = "off";
  pasteInput.spellcheck = false;
  pasteInput.className = "e2ee-paste-link";
  const pasteButton = document.createElement("button");
  pasteButton.type = "submit";
  pasteButton.className = "e2ee-paste-use";
  const pasteError = span("e2ee-paste-error", "");
  paste.append(pasteIntro, " ", pasteInput, " ", pasteButton, " ", pasteError);
  (bannerElement ?? statusElement)?.after(paste);
  paste.addEventListener("submit", async (event) => {
    event.preventDefault();
    const found = secretFromLink(pasteInput.value);
    if (found.error) {
      pasteError.textContent = text(lang, found.error);
      return;
    }
    pasteError.textContent = "";
    pasteInput.value = ""; // the secret does not linger in the field
    await e2ee.setRoomSecret(found.secret, found.required);
    if (onRoomSecret) onRoomSecret(found.secret, found.required);
    render();
  });

  /** The room secret of a pasted invite link for this room: {secret, required} or {error}. */
  function secretFromLink(value) {
    let link;
    try {
      link = new URL(String(value).trim());
    } catch {
      return { error: "pasteBad" };
    }
    const path = (p) => decodeURIComponent(p).replace(/^\/+|\/+$/g, "").toLowerCase();
    if (path(link.pathname) !== path(location.pathname)) return { error: "pasteOtherRoom" };
    const { secret, required } = readFragment(link.hash);
    return secret ? { secret, required } : { error: "pasteNoSecret" };
  }

  function renderPaste() {
    const show = e2ee.state === "on" && !e2ee.trust().hasSecret;
    paste.hidden = !show;
    if (!show) return;
    pasteIntro.textContent = text(lang, "pasteIntro");
    pasteInput.setAttribute("aria-label", text(lang, "pasteLabel"));
    pasteInput.placeholder = text(lang, "pasteLabel");
    pasteButton.textContent = text(lang, "pasteButton");
  }

  function render() {
    renderBanner();
    renderPaste();
    if (!statusElement) return;
    const state = e2ee.state;
    const trust = e2ee.trust();
    statusElement.replaceChildren();
    statusElement.hidden = !(roomOn || state === "on" || trust.held);
    statusElement.dataset.state = state;
    if (statusElement.hidden) return;
    statusElement.append(span("e2ee-state", state === "unable" ? text(lang, "unable") : state === "on" ? text(lang, "on") : ""));
    // every other member who receives the room's media and does not encrypt end to
    // end counts, consoles and phones included: a listener nobody counts is unseen
    const clear = participants.filter((p) => p.id !== selfId && p.e2ee !== "on").length;
    if (clear > 0) statusElement.append(" ", span("e2ee-clear", text(lang, "clear", { n: clear })));
    if (state !== "on") return;
    if (!trust.hasSecret) statusElement.append(" ", span("e2ee-unverified e2ee-no-secret", text(lang, "noSecret")));
    const unverified = trust.members.filter((m) => m.verified === false).map((m) => nameOf(m.id));
    if (unverified.length) {
      statusElement.append(" ", span("e2ee-unverified", text(lang, "unverified", { names: unverified.join(", ") })));
    }
    if (trust.problems.length) {
      const names = trust.problems.map(nameOf).join(", ");
      statusElement.append(" ", span("e2ee-problem", text(lang, "problem", { names })));
    }
    if (trust.gaveUp) {
      statusElement.append(" ", span("e2ee-problem e2ee-gave-up", text(lang, "gaveUp", { n: trust.abandoned })));
    }
    const sas = e2ee.sas();
    if (sas) {
      const words = span("e2ee-sas", `${text(lang, "words")} `);
      words.append(span("digits", sas.digits), " ", span("e2ee-differ", text(lang, "differ")));
      statusElement.append(" ", words);
      if (compareAgain) {
        const again = span("e2ee-again", `${text(lang, "again")} `);
        const done = document.createElement("button");
        done.type = "button";
        done.className = "quiet e2ee-compared";
        done.textContent = text(lang, "compared");
        done.addEventListener("click", () => {
          compareAgain = false;
          render();
        });
        again.append(done);
        statusElement.append(" ", again);
      }
    } else if (trust.members.length && !trust.gaveUp) {
      statusElement.append(" ", span("e2ee-sas-pending", text(lang, "pending")));
    }
    statusElement.append(" ", span("e2ee-note", text(lang, "notCovered")));
  }

  if (onLangChange) onLangChange(() => render());
  render();

  // A read-only hook for tests and debugging: counters, key ids and the SAS, never keys.
  if (!("kreisE2ee" in window)) {
    Object.defineProperty(window, "kreisE2ee", {
      value: Object.freeze({
        get state() {
          return e2ee.state;
        },
        get sas() {
          return e2ee.sas();
        },
        get trust() {
          return e2ee.trust();
        },
        stats: () => e2ee.stats(),
      }),
      writable: false,
      configurable: false,
    });
  }
  return e2ee;
}
