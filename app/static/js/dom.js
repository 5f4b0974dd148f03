/**
 * Small DOM building blocks for the client: elements with text (never HTML), screen
 * switching, a polite status notice and a keyboard-friendly confirmation dialog.
 *
 * Names and chat come from other people: they only ever reach the page through
 * textContent, which is why `el()` takes text and no markup.
 */

import { t } from "./i18n.js";

/** document.getElementById, failing loudly when the page and the code disagree. */
export function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node;
}

/** Creates `<tag class=…>text</tag>` with optional attributes; text via textContent. */
export function el(tag, { cls = "", text = null, attrs = {} } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== null && text !== undefined) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const SCREENS = ["screen-prejoin", "screen-wait", "screen-room", "screen-ended", "screen-connecting"];

/** Shows one screen and hides the others; moves focus to its heading for screen readers. */
export function showScreen(id) {
  for (const name of SCREENS) {
    const node = document.getElementById(name);
    if (node) node.hidden = name !== id;
  }
  document.dispatchEvent(new CustomEvent("kreis:screen", { detail: id }));
  const screen = document.getElementById(id);
  const heading = screen && screen.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

let noticeTimer = null;

/** A short message in the status line (read out by screen readers). */
export function notice(text, { urgent = false, seconds = 6 } = {}) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.classList.toggle("urgent", urgent);
  box.hidden = false;
  clearTimeout(noticeTimer);
  if (seconds > 0) noticeTimer = setTimeout(() => (box.hidden = true), seconds * 1000);
}

export function clearNotice() {
  const box = document.getElementById("notice");
  if (box) box.hidden = true;
}

/**
 * Asks a yes/no question in a modal dialog; resolves true for yes, false for no. With
 * `option` (a sentence), a checkbox under the question: yes with it ticked is "option".
 */
export function confirmDialog(question, yesLabel, { option = null } = {}) {
  const dialog = document.getElementById("confirm");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(question));
  document.getElementById("confirm-text").textContent = question;
  const optionRow = document.getElementById("confirm-option");
  const check = document.getElementById("confirm-check");
  if (optionRow && check) {
    optionRow.hidden = !option;
    check.checked = false;
    document.getElementById("confirm-check-label").textContent = option || "";
  }
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  yes.textContent = yesLabel;
  no.textContent = t("cancel");
  return answerOf(dialog, yes, no, {
    yesAnswer: () => (option && check && check.checked ? "option" : true),
    focus: no,
  });
}

/**
 * Opens `dialog` as a modal and resolves with `yesAnswer()` when `yes` is pressed, false
 * for `no` or Escape; the listeners go with the answer.
 */
export function answerOf(dialog, yes, no, { yesAnswer = () => true, focus = no } = {}) {
  return new Promise((resolve) => {
    const finish = (answer) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onNo);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onYes = () => finish(yesAnswer());
    const onNo = (ev) => {
      if (ev) ev.preventDefault();
      finish(false);
    };
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("cancel", onNo);
    dialog.showModal();
    focus.focus();
  });
}

/** A short, calm two-tone chime with WebAudio (no sound file needed). */
let audioCtx = null;
export function chime() {
  try {
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
    const now = audioCtx.currentTime;
    for (const [i, freq] of [660, 880].entries()) {
      const osc = audioCtx.createOscillator();
      const gain = audioCtx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      const start = now + i * 0.18;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.35);
      osc.connect(gain).connect(audioCtx.destination);
      osc.start(start);
      osc.stop(start + 0.4);
    }
  } catch (_) {
    /* no audio output: the visual notice still shows */
  }
}
