/**
 * The page that ends a visit: why it ended, in calm words, and what next. A leader who
 * ended the meeting gets their own page (not the guests' goodbye) with "Start it
 * again"; denied, removed and ended pages show the server's help line (`[rooms]
 * help_line`, from `hello`), for someone who needs to talk to a person now.
 */

import { $ } from "./dom.js";
import { t } from "./i18n.js";

const TEXTS = {
  denied: "ended_denied",
  timeout: "ended_timeout",
  ended: "ended_room",
  room: "ended_room",
  removed: "ended_removed",
  left: "ended_left",
  lost: "err_connection",
};

/** Reasons after which the help line is shown: the visit ended, not by one's own choice. */
const HELP_AFTER = new Set(["denied", "timeout", "ended", "room", "removed", "left"]);

/**
 * Fills the ended screen. `reason`: denied, timeout, ended, room, removed, left, lost.
 * `leader`: this page led the meeting. `helpLine`: the configured line, or "".
 */
export function renderEnding({ reason, leader = false, helpLine = "" }) {
  const leaderEnded = leader && (reason === "room" || reason === "ended");
  const key = Object.hasOwn(TEXTS, reason) ? TEXTS[reason] : "ended_left";
  $("ended-title").textContent = t(leaderEnded ? "ended_leader_title" : "ended_title");
  $("ended-text").textContent = t(leaderEnded ? "ended_leader_text" : key);
  const rejoin = $("rejoin");
  rejoin.textContent = t(leaderEnded ? "restart_meeting" : "rejoin");
  rejoin.hidden = !leaderEnded && (reason === "removed" || reason === "room" || reason === "ended");
  const line = String(helpLine || "").trim();
  const help = $("ended-help");
  help.hidden = !line || leaderEnded || !HELP_AFTER.has(reason);
  $("help-line").textContent = line;
  document.title = t("title_ended");
}
