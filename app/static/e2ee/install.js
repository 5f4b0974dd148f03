/**
 * Plugs the E2EE engine into the web client: its `mediaHooks` (peers.js), its
 * signalling connection, and one status line that shows the state and the safety words.
 *
 *   import { installE2EE } from "/static/e2ee/install.js";
 *   const e2ee = installE2EE({ sig, mediaHooks, statusElement: $("e2ee-status"),
 *                              lang: currentLang, onLangChange });
 *
 * Call it once, before the first `joined`. The engine follows the room's `settings.e2ee`;
 * the leader switches it with `set_e2ee` and every browser follows live. When the person
 * leaves on their own, call `e2ee.reset()` (removal and room end are seen by the engine).
 */

import { createE2EE, preferE2eeCodecs } from "./index.js";

const KIND_OF_SOURCE = { mic: "audio", camera: "video", screen: "video" };

const TEXTS = {
  on: ["End-to-end encrypted", "Ende-zu-Ende-verschlüsselt"],
  unable: [
    "This browser cannot encrypt end-to-end. Please use a current browser.",
    "Dieser Browser kann nicht Ende-zu-Ende verschlüsseln. Bitte nutze einen aktuellen Browser.",
  ],
  words: ["Safety words, compare them out loud:", "Sicherheitswörter, vergleicht sie laut:"],
  clear: [
    "Not encrypted: {n} participant(s)",
    "Nicht verschlüsselt: {n} Teilnehmende",
  ],
};

function text(lang, key, n = 0) {
  return TEXTS[key][lang() === "de" ? 1 : 0].replace("{n}", String(n));
}

export function installE2EE({ sig, mediaHooks, statusElement = null, lang = () => "en", onLangChange = null }) {
  let roomOn = false;
  let participants = [];
  let selfId = null;

  const e2ee = createE2EE({
    sendSignal: (msg) => sig.send(msg),
    requestKeyframe: (participant) => sig.send({ type: "keyframe", participant }),
    onStateChange: () => render(),
    onSasChange: () => render(),
    onReset: () => {
      roomOn = false;
      participants = [];
      render();
    },
  });

  /** mid → publisher from the newest `down_offer`, to attach receivers before the answer. */
  let downTracks = new Map();

  mediaHooks.configure = (config) => e2ee.rtcConfiguration(config);
  mediaHooks.transceiver = (transceiver, kind) => {
    if (!e2ee.supported()) return;
    // Live switching means no renegotiation: codecs must suit E2EE from the start.
    try {
      preferE2eeCodecs(transceiver, kind);
    } catch (err) {
      console.warn("kreis: e2ee codecs", err);
    }
    if (transceiver.direction === "recvonly") {
      // Chromium (156) applies a receiver transform only if it is set before the answer;
      // an unmapped receiver drops every frame until `receiver` below names its publisher.
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

  function render() {
    if (!statusElement) return;
    const state = e2ee.state;
    statusElement.replaceChildren();
    statusElement.hidden = !(roomOn || state === "on");
    statusElement.dataset.state = state;
    if (statusElement.hidden) return;
    const line = document.createElement("span");
    line.className = "e2ee-state";
    line.textContent = state === "unable" ? text(lang, "unable") : state === "on" ? text(lang, "on") : "";
    statusElement.append(line);
    // every other member who receives the room's media and does not encrypt end to
    // end counts, consoles and phones included: a listener nobody counts is unseen
    const clear = participants.filter((p) => p.id !== selfId && p.e2ee !== "on").length;
    if (clear > 0) {
      const warn = document.createElement("span");
      warn.className = "e2ee-clear";
      warn.textContent = text(lang, "clear", clear);
      statusElement.append(" ", warn);
    }
    const sas = e2ee.sas();
    if (state === "on" && sas) {
      const words = document.createElement("span");
      words.className = "e2ee-sas";
      words.textContent = `${text(lang, "words")} ${(lang() === "de" ? sas.de : sas.en).join(" · ")}`;
      statusElement.append(" ", words);
    }
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
        stats: () => e2ee.stats(),
      }),
      writable: false,
      configurable: false,
    });
  }
  return e2ee;
}
