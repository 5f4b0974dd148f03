/**
 * The start page (/): turns a room name or a pasted room link into /<slug>, and sends
 * leaders to the room page with the sign-in open (#leader). Nothing is sent to the
 * server from here; signing in happens on the room page, over its own connection.
 */

import { $ } from "./dom.js";
import { t, applyTexts, bindLangButton } from "./i18n.js";

const SLUG = /^[a-z0-9](?:[a-z0-9-]{1,62}[a-z0-9])$/;

/** "https://host/dienstag-abend", "/dienstag-abend" or "Dienstag-Abend" → "dienstag-abend". */
export function slugFrom(raw) {
  let text = String(raw || "").trim();
  try {
    if (/^https?:\/\//i.test(text)) text = new URL(text).pathname;
  } catch (_) {
    return null;
  }
  text = text.replace(/^\/+|\/+$/g, "").toLowerCase();
  return SLUG.test(text) ? text : null;
}

function wire(formId, inputId, errorId, suffix) {
  $(formId).addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $(inputId);
    const slug = slugFrom(input.value);
    if (!slug) {
      $(errorId).textContent = t("landing_bad");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    location.assign(`/${encodeURIComponent(slug)}${suffix}`);
  });
}

applyTexts();
bindLangButton($("lang"));
wire("go-form", "room", "room-error", "");
wire("leader-form", "leader-room", "leader-room-error", "#leader");
$("room").focus();
