/**
 * German and English for every sentence a person reads in the web client.
 *
 * The language comes from navigator.language, can be switched in the UI and is
 * remembered in localStorage (a preference, not meeting data). Static HTML marks its
 * text with data-i18n (textContent), data-i18n-aria (aria-label) and
 * data-i18n-placeholder; applyTexts() fills them in.
 */

const TEXTS = {
  app_name: ["Kreis", "Kreis"],
  lang_switch: ["Deutsch", "English"],
  lang_switch_label: ["Sprache: auf Deutsch umschalten", "Language: switch to English"],
  // landing page
  landing_title: ["Join a meeting", "An einem Treffen teilnehmen"],
  landing_intro: [
    "Enter the room name or the link you were given.",
    "Gib den Raumnamen oder den Link ein, den du bekommen hast.",
  ],
  landing_room: ["Room name or link", "Raumname oder Link"],
  landing_go: ["Continue", "Weiter"],
  landing_bad: [
    "That does not look like a room name. Room names use small letters, digits and dashes.",
    "Das sieht nicht wie ein Raumname aus. Raumnamen bestehen aus kleinen Buchstaben, Ziffern und Bindestrichen.",
  ],
  landing_leader_title: ["For group leaders", "Für Gruppenleitungen"],
  landing_leader_intro: [
    "Start or open a room: choose its name, then sign in with your group and password on the next page.",
    "Einen Raum starten oder öffnen: Namen wählen, auf der nächsten Seite mit Gruppe und Passwort anmelden.",
  ],
  landing_leader_go: ["Start as leader", "Als Leitung starten"],
  privacy_note: [
    "Nothing about a meeting is recorded or stored. This page loads nothing from other servers.",
    "Von einem Treffen wird nichts aufgezeichnet oder gespeichert. Diese Seite lädt nichts von fremden Servern.",
  ],
  // pre-join
  prejoin_title: ["Before you join", "Bevor du eintrittst"],
  prejoin_lead: [
    "A leader lets everyone in: after you press Join, you wait a moment until they do.",
    "Eine Leitung lässt alle herein: Nach „Eintreten“ wartest du kurz, bis sie dich hereinlässt.",
  ],
  devices_off_hint: [
    "Camera and microphone stay off until you switch them on. While you wait to be let in, they stay off.",
    "Kamera und Mikrofon bleiben aus, bis du sie einschaltest. Solange du auf Einlass wartest, bleiben sie aus.",
  ],
  toggle_camera_on: ["Camera: on", "Kamera: an"],
  toggle_camera_off: ["Camera: off", "Kamera: aus"],
  toggle_mic_on: ["Microphone: on", "Mikrofon: an"],
  toggle_mic_off: ["Microphone: off", "Mikrofon: aus"],
  device_choice: ["Choose camera and microphone", "Kamera und Mikrofon auswählen"],
  leader_login_hint: [
    "Only for the group's leader: with the group and its password you start the meeting and let people in.",
    "Nur für die Leitung der Gruppe: Mit Gruppe und Passwort startest du das Treffen und lässt Menschen herein.",
  ],
  leader_start_button: ["Start the meeting", "Treffen starten"],
  leader_missing: [
    "To start the meeting, please enter your group and its password.",
    "Um das Treffen zu starten, gib bitte deine Gruppe und das Passwort ein.",
  ],
  selfview_show: ["Show my camera (only to me)", "Mein Kamerabild zeigen (nur mir)"],
  selfview_hide: ["Hide my camera", "Mein Kamerabild ausblenden"],
  selfview_label: ["Your camera, seen only by you", "Dein Kamerabild, nur für dich"],
  selfview_hint: [
    "Nobody else sees this picture. It goes off when you are let in.",
    "Niemand sonst sieht dieses Bild. Es geht aus, wenn du hereingelassen wirst.",
  ],
  room_label: ["Room", "Raum"],
  name_label: ["Your name or a pseudonym", "Dein Name oder ein Pseudonym"],
  name_hint: ["Others will see this name. Up to 40 characters.", "Die anderen sehen diesen Namen. Höchstens 40 Zeichen."],
  name_missing: ["Please enter a name or a pseudonym.", "Bitte gib einen Namen oder ein Pseudonym ein."],
  camera_label: ["Camera", "Kamera"],
  mic_label: ["Microphone", "Mikrofon"],
  device_none: ["Off", "Aus"],
  mic_level: ["Microphone level", "Mikrofon-Pegel"],
  preview_label: ["Your camera preview", "Vorschau deiner Kamera"],
  preview_off: ["Camera is off", "Kamera ist aus"],
  no_devices: [
    "Camera or microphone are not available. You can still join and listen.",
    "Kamera oder Mikrofon sind nicht verfügbar. Du kannst trotzdem eintreten und zuhören.",
  ],
  rules_title: ["The rules of this room", "Die Regeln dieses Raums"],
  rule_stays: ["What is said here stays in this room.", "Was hier gesagt wird, bleibt in diesem Raum."],
  rule_no_rec: ["No recordings, no screenshots, no photos.", "Keine Aufnahmen, keine Screenshots, keine Fotos."],
  rules_accept: ["I accept these rules", "Ich halte mich an diese Regeln"],
  rules_missing: ["Please accept the rules first.", "Bitte bestätige zuerst die Regeln."],
  password_label: ["Room password", "Raum-Passwort"],
  password_needed: ["This room has a password. Please enter it.", "Dieser Raum hat ein Passwort. Bitte gib es ein."],
  join_button: ["Join", "Eintreten"],
  leader_toggle: ["I lead this group", "Ich leite diese Gruppe"],
  leader_group: ["Group", "Gruppe"],
  leader_password: ["Group password", "Gruppen-Passwort"],
  connecting: ["Connecting …", "Verbindung wird hergestellt …"],
  // errors from the server (stable codes)
  err_password_required: ["This room has a password. Please enter it.", "Dieser Raum hat ein Passwort. Bitte gib es ein."],
  err_bad_room_password: ["The room password is wrong.", "Das Raum-Passwort ist falsch."],
  err_rate_limited: [
    "Too many attempts. Please wait {s} seconds and try again.",
    "Zu viele Versuche. Bitte warte {s} Sekunden und versuche es dann noch einmal.",
  ],
  err_room_locked: ["The room is locked. Nobody new can join right now.", "Der Raum ist abgeschlossen. Gerade kann niemand Neues eintreten."],
  err_barred: ["You cannot join this room again.", "Du kannst diesem Raum nicht mehr beitreten."],
  err_bad_name: ["Please choose a name with 1 to 40 characters.", "Bitte wähle einen Namen mit 1 bis 40 Zeichen."],
  err_bad_slug: ["This room name is not valid.", "Dieser Raumname ist nicht gültig."],
  err_reserved_slug: ["This room name is reserved. Please choose another.", "Dieser Raumname ist reserviert. Bitte wähle einen anderen."],
  err_bad_credentials: ["Group or password is wrong.", "Gruppe oder Passwort ist falsch."],
  err_not_allowed: ["You are not allowed to do that.", "Das darfst du nicht."],
  err_connection: [
    "No connection to the server. Please check your internet connection.",
    "Keine Verbindung zum Server. Bitte prüfe deine Internetverbindung.",
  ],
  err_room_closed: [
    "This room is not open to you right now. It may not have started yet, it may be locked, or it may need a password. Check your link and the password, or try again later.",
    "Dieser Raum ist für dich gerade nicht offen. Vielleicht hat das Treffen noch nicht begonnen, der Raum ist abgeschlossen oder braucht ein Passwort. Prüfe deinen Link und das Passwort oder versuche es später noch einmal.",
  ],
  err_reserved_name: [
    "This name is kept for the group's leader. Please choose another name.",
    "Dieser Name ist der Leitung der Gruppe vorbehalten. Bitte wähle einen anderen Namen.",
  ],
  err_console_not_leader: [
    "Only the group's leaders can join a room with the console.",
    "Nur die Leitung der Gruppe kann mit der Konsole einem Raum beitreten.",
  ],
  err_lobby_full: [
    "Too many people are waiting to come in right now. Please try again in a moment.",
    "Gerade warten zu viele Menschen auf Einlass. Bitte versuche es gleich noch einmal.",
  ],
  retry: ["Try again", "Noch einmal versuchen"],
  err_generic: ["Something went wrong: {msg}", "Etwas ist schiefgegangen: {msg}"],
  // waiting
  waiting_leader_title: ["Waiting for the leader", "Warten auf die Leitung"],
  waiting_leader_text: [
    "The meeting has not started yet. You will be let in as soon as the leader opens the room. You can keep this page open.",
    "Das Treffen hat noch nicht begonnen. Sobald die Leitung den Raum öffnet, geht es weiter. Du kannst diese Seite offen lassen.",
  ],
  lobby_title: ["Please wait a moment", "Bitte einen Moment Geduld"],
  lobby_text: [
    "The leader has been told that you are here and will let you in. Nobody can see or hear you yet.",
    "Die Leitung weiß, dass du da bist, und lässt dich gleich herein. Noch kann dich niemand sehen oder hören.",
  ],
  lobby_messages: ["Messages from the leader", "Nachrichten der Leitung"],
  lobby_send_label: ["Message to the leader", "Nachricht an die Leitung"],
  cancel: ["Cancel", "Abbrechen"],
  // ended
  ended_denied: ["The leader did not let you in this time.", "Die Leitung hat dich diesmal nicht hereingelassen."],
  ended_timeout: ["Nobody let you in in time. You can knock again.", "Niemand hat dich rechtzeitig hereingelassen. Du kannst noch einmal anklopfen."],
  ended_room: ["The meeting has ended. Thank you for being here.", "Das Treffen ist beendet. Danke, dass du da warst."],
  ended_removed: ["The leader has removed you from the meeting.", "Die Leitung hat dich aus dem Treffen entfernt."],
  ended_left: ["You have left the meeting.", "Du hast das Treffen verlassen."],
  ended_title: ["Goodbye", "Auf Wiedersehen"],
  ended_leader_title: ["The meeting has ended", "Das Treffen ist beendet"],
  ended_leader_text: [
    "You ended the meeting for everyone. Nothing of it was kept: no names, no chat, no recordings.",
    "Du hast das Treffen für alle beendet. Nichts davon wurde gespeichert: keine Namen, kein Chat, keine Aufnahmen.",
  ],
  restart_meeting: ["Start it again", "Wieder starten"],
  help_title: ["Need someone to talk to now?", "Brauchst du jetzt jemanden zum Reden?"],
  title_waiting: ["Waiting to be let in · Kreis", "Warten auf Einlass · Kreis"],
  title_in_room: ["In the meeting · Kreis", "Im Treffen · Kreis"],
  title_ended: ["Meeting over · Kreis", "Treffen vorbei · Kreis"],
  admitted_notice: ["You are in the meeting now.", "Du bist jetzt im Treffen."],
  rejoin: ["Join again", "Wieder eintreten"],
  to_start: ["Back to the start page", "Zur Startseite"],
  // room
  mute: ["Mute microphone", "Mikrofon stummschalten"],
  unmute: ["Unmute microphone", "Mikrofon einschalten"],
  camera_off: ["Turn camera off", "Kamera ausschalten"],
  camera_on: ["Turn camera on", "Kamera einschalten"],
  share_start: ["Share screen", "Bildschirm teilen"],
  share_stop: ["Stop sharing", "Teilen beenden"],
  hand_raise: ["Raise hand", "Hand heben"],
  hand_lower: ["Lower hand", "Hand senken"],
  chat_toggle: ["Chat", "Chat"],
  people_toggle: ["Participants", "Teilnehmende"],
  leader_toggle_panel: ["Leader", "Leitung"],
  leave: ["Leave", "Verlassen"],
  controls_label: ["Meeting controls", "Steuerung des Treffens"],
  more: ["More", "Mehr"],
  close: ["Close", "Schließen"],
  invite_copy_menu: ["Copy invite link", "Einladungslink kopieren"],
  shortcuts_title: ["Keyboard shortcuts", "Tastenkürzel"],
  others_video_off: ["Others' video off (for a weak connection)", "Video der anderen aus (bei schwacher Verbindung)"],
  others_video_on: ["Others' video on", "Video der anderen an"],
  others_video_gone: [
    "You no longer receive the others' video: you still hear everyone and see shared screens.",
    "Du empfängst das Video der anderen nicht mehr: du hörst weiter alle und siehst geteilte Bildschirme.",
  ],
  others_video_back: ["The others' video is coming back.", "Das Video der anderen kommt zurück."],
  fewer_frames_on: ["Fewer frames of others' video (saves data)", "Weniger Bilder im Video der anderen (spart Daten)"],
  fewer_frames_off: ["All frames of others' video", "Alle Bilder im Video der anderen"],
  fewer_frames_set: [
    "You now receive the others' video with about a quarter of its frames.",
    "Du empfängst das Video der anderen jetzt mit etwa einem Viertel der Bilder.",
  ],
  fewer_frames_unset: [
    "The others' video comes with all its frames again.",
    "Das Video der anderen kommt wieder mit allen Bildern.",
  ],
  shortcut_mic: ["Microphone on/off", "Mikrofon an/aus"],
  shortcut_camera: ["Camera on/off", "Kamera an/aus"],
  shortcut_hand: ["Raise or lower hand", "Hand heben oder senken"],
  shortcut_people: ["Participants", "Teilnehmende"],
  shortcut_chat: ["Chat", "Chat"],
  shortcut_help: ["This list", "Diese Liste"],
  shortcut_shrink: ["Enlarged screen back to all", "Vergrößerten Bildschirm zurück zu allen"],
  ctl_mic_on: ["Mic on", "Mikro an"],
  ctl_mic_off: ["Mic off", "Mikro aus"],
  ctl_camera_on: ["Camera on", "Kamera an"],
  ctl_camera_off: ["Camera off", "Kamera aus"],
  ctl_share: ["Share", "Teilen"],
  ctl_share_stop: ["Stop sharing", "Teilen beenden"],
  ctl_hand: ["Hand", "Hand"],
  ctl_hand_up: ["Hand up", "Hand oben"],
  people_count_label: ["Participants: {n}", "Teilnehmende: {n}"],
  leave_confirm: ["Leave the meeting?", "Das Treffen verlassen?"],
  you: ["you", "du"],
  screen_of: ["Screen of {name}", "Bildschirm von {name}"],
  screen_enlarge: ["Enlarge", "Vergrößern"],
  screen_shrink: ["Back to all", "Zurück zu allen"],
  mic_off_icon: ["microphone off", "Mikrofon aus"],
  camera_off_icon: ["camera off", "Kamera aus"],
  hand_icon: ["hand raised", "Hand gehoben"],
  speaking: ["speaking", "spricht"],
  // connection quality (tiles.js): marks on a tile, and the hint about our own link
  link_fair: ["unstable connection", "wackelige Verbindung"],
  link_poor: ["weak connection", "schwache Verbindung"],
  video_paused: ["video paused", "Video angehalten"],
  link_weak: [
    "Your connection is weak: video paused, you can still hear and be heard.",
    "Deine Verbindung ist schwach: Video angehalten, du kannst weiterhin hören und gehört werden.",
  ],
  role_leader: ["leader", "Leitung"],
  role_coleader: ["co-leader", "Co-Leitung"],
  role_phone: ["phone", "Telefon"],
  // what kind of connection a person uses: everyone who can hear is seen, with its kind
  kind_console_leader: ["Leader (console)", "Leitung (Konsole)"],
  kind_console: ["Console", "Konsole"],
  kind_browser: ["Browser", "Browser"],
  kind_phone: ["Phone", "Telefon"],
  away: ["reconnecting", "getrennt"],
  chat_title: ["Chat", "Chat"],
  chat_input: ["Write a message", "Nachricht schreiben"],
  chat_send: ["Send", "Senden"],
  chat_empty: ["No messages yet.", "Noch keine Nachrichten."],
  people_title: ["Participants ({n})", "Teilnehmende ({n})"],
  mute_requested: ["The leader has muted your microphone.", "Die Leitung hat dein Mikrofon stummgeschaltet."],
  reconnecting: ["Connection lost. Reconnecting …", "Verbindung unterbrochen. Verbinde neu …"],
  reconnected: ["Connected again.", "Wieder verbunden."],
  // staying in the meeting through drops and restarts (app.js)
  reconnect_trying: [
    "No connection to the server for {s} s. Still trying; you will be back in the room without waiting in the lobby.",
    "Seit {s} s keine Verbindung zum Server. Wir versuchen es weiter; du kommst ohne Warteraum zurück in den Raum.",
  ],
  reconnect_rejoining: ["Connected again. Returning to the room …", "Wieder verbunden. Zurück in den Raum …"],
  reconnect_waiting_leader: [
    "The server was restarted. The room opens again as soon as the leader is back; you will not have to wait in the lobby.",
    "Der Server wurde neu gestartet. Der Raum öffnet wieder, sobald die Leitung zurück ist; in den Warteraum musst du nicht.",
  ],
  back_in_room: ["You are back in the room.", "Du bist wieder im Raum."],
  leader_left: [
    "The leader has left the room. Nobody can let new people in until a leader is back.",
    "Die Leitung hat den Raum verlassen. Bis eine Leitung zurück ist, kann niemand Neues hereingelassen werden.",
  ],
  leader_left_successor: [
    "The leader has left the room. {name} leads the room now.",
    "Die Leitung hat den Raum verlassen. {name} leitet den Raum jetzt.",
  ],
  leader_left_you: [
    "The leader has left the room. You lead the room now.",
    "Die Leitung hat den Raum verlassen. Du leitest den Raum jetzt.",
  ],
  leader_back: ["A leader is in the room again.", "Eine Leitung ist wieder im Raum."],
  lobby_text_no_leader: [
    "No leader is in the room right now, so nobody can let you in yet. You can keep this page open: you will be let in once a leader is back.",
    "Gerade ist keine Leitung im Raum, deshalb kann dich noch niemand hereinlassen. Du kannst diese Seite offen lassen: Sobald eine Leitung zurück ist, geht es weiter.",
  ],
  server_restart: ["The server is restarting. You will be reconnected.", "Der Server startet neu. Du wirst gleich wieder verbunden."],
  share_failed: ["Screen sharing was not started.", "Bildschirmteilen wurde nicht gestartet."],
  device_failed: ["The device could not be started.", "Das Gerät konnte nicht gestartet werden."],
  // leader panel
  leader_title: ["Leading this room", "Diesen Raum leiten"],
  lobby_queue_title: ["Waiting in the lobby ({n})", "Wartet im Vorraum ({n})"],
  lobby_empty: ["Nobody is waiting.", "Niemand wartet."],
  lobby_refused: [
    "Turned away at the door so far: {n} (room locked or full, password missing or wrong, or removed before).",
    "Bisher an der Tür abgewiesen: {n} (Raum abgeschlossen oder voll, Passwort fehlte oder falsch, oder vorher entfernt).",
  ],
  invite_title: ["Invite link", "Einladungslink"],
  invite_hint: [
    "Send this link to the people you invite; with it they can knock.",
    "Schick diesen Link den Menschen, die du einlädst; damit können sie anklopfen.",
  ],
  invite_copy: ["Copy", "Kopieren"],
  invite_copied: ["Invite link copied.", "Einladungslink kopiert."],
  invite_copy_failed: ["Please select the link and copy it.", "Bitte markiere den Link und kopiere ihn."],
  knock_notice: ["{name} is waiting in the lobby.", "{name} wartet im Vorraum."],
  admit: ["Admit", "Hereinlassen"],
  admit_name: ["Admit {name}", "{name} hereinlassen"],
  deny: ["Deny", "Ablehnen"],
  deny_name: ["Deny {name}", "{name} ablehnen"],
  admit_all: ["Admit all", "Alle hereinlassen"],
  lobby_reply_label: ["Message to {name}", "Nachricht an {name}"],
  ask_mute: ["Ask to mute", "Bitten, stummzuschalten"],
  ask_mute_name: ["Ask {name} to mute", "{name} bitten, stummzuschalten"],
  force_mute: ["Mute", "Stummschalten"],
  force_mute_name: ["Mute {name}", "{name} stummschalten"],
  mute_all: ["Mute everyone", "Alle stummschalten"],
  mute_all_confirm: [
    "Mute everyone's microphone now? Each person can switch theirs on again.",
    "Jetzt alle Mikrofone stummschalten? Jede Person kann ihres wieder einschalten.",
  ],
  mute_asked_sent: ["{name} has been asked to mute.", "{name} wurde gebeten, stummzuschalten."],
  mute_asked: ["The leader asks you to mute your microphone.", "Die Leitung bittet dich, dein Mikrofon stummzuschalten."],
  mute_accept: ["Mute now", "Jetzt stummschalten"],
  mute_decline: ["Keep it on", "Anlassen"],
  remove_bar: ["Do not let {name} back into this meeting", "{name} nicht wieder in dieses Treffen lassen"],
  hands_title: ["Raised hands, in order", "Gehobene Hände, der Reihe nach"],
  hand_notice: ["{name} raised a hand.", "{name} hat die Hand gehoben."],
  hand_order: ["hand {n}", "Hand {n}"],
  lower_hand: ["Lower hand", "Hand senken"],
  lower_hand_name: ["Lower the hand of {name}", "Hand von {name} senken"],
  hand_lowered_by_leader: ["The leader lowered your hand.", "Die Leitung hat deine Hand gesenkt."],
  remove: ["Remove", "Entfernen"],
  remove_name: ["Remove {name}", "{name} entfernen"],
  remove_confirm: ["Remove {name} from the meeting?", "{name} aus dem Treffen entfernen?"],
  settings_title: ["Room settings", "Raum-Einstellungen"],
  setting_lobby: ["Lobby: let people in one by one", "Vorraum: Menschen einzeln hereinlassen"],
  setting_lock: ["Lock the room", "Raum abschließen"],
  setting_password: ["New room password (4 or more characters)", "Neues Raum-Passwort (mindestens 4 Zeichen)"],
  setting_e2ee: ["End-to-end encryption", "Ende-zu-Ende-Verschlüsselung"],
  setting_e2ee_hint: [
    "Sound and video can then only be seen and heard by the people in the room, not by this server.",
    "Ton und Bild können dann nur die Menschen im Raum sehen und hören, nicht dieser Server.",
  ],
  e2ee_phones_confirm: [
    "People who called in by phone cannot be end-to-end encrypted. If you switch encryption on, they will hear a short announcement and be disconnected. Switch it on anyway?",
    "Wer per Telefon eingewählt ist, kann nicht Ende-zu-Ende-verschlüsselt werden. Wenn du die Verschlüsselung einschaltest, hören diese Menschen eine kurze Ansage und werden getrennt. Trotzdem einschalten?",
  ],
  e2ee_phones_yes: ["Switch on, disconnect phones", "Einschalten, Telefone trennen"],
  setting_dial_in: ["Phone dial-in", "Telefon-Einwahl"],
  dial_in_off_hint: [
    "When this is on, people can call in by phone with a PIN.",
    "Wenn das an ist, können Menschen sich per Telefon mit einer PIN einwählen.",
  ],
  dial_in_e2ee_hint: [
    "Phone dial-in is off while end-to-end encryption is on.",
    "Telefon-Einwahl ist aus, solange Ende-zu-Ende-Verschlüsselung an ist.",
  ],
  dial_in_on_hint: [
    "Callers dial a number, enter the PIN and then wait in the lobby.",
    "Anrufende wählen eine Nummer, geben die PIN ein und warten dann im Vorraum.",
  ],
  dial_in_number: ["Phone number", "Telefonnummer"],
  dial_in_numbers: ["Phone numbers", "Telefonnummern"],
  dial_in_pin: ["PIN", "PIN"],
  promote: ["Make co-leader", "Zur Co-Leitung machen"],
  promote_name: ["Make {name} a co-leader", "{name} zur Co-Leitung machen"],
  promote_confirm: [
    "Make {name} a co-leader? They can then let people in, mute and remove people and change the room settings.",
    "{name} zur Co-Leitung machen? Dann kann {name} Menschen hereinlassen, stummschalten und entfernen und die Raum-Einstellungen ändern.",
  ],
  err_e2ee_on: [
    "Phone dial-in is off while end-to-end encryption is on.",
    "Telefon-Einwahl ist aus, solange Ende-zu-Ende-Verschlüsselung an ist.",
  ],
  password_set: ["Set password", "Passwort setzen"],
  password_clear: ["Remove password", "Passwort entfernen"],
  password_is_set: ["The room has a password.", "Der Raum hat ein Passwort."],
  password_not_set: ["The room has no password.", "Der Raum hat kein Passwort."],
  end_room: ["End the meeting for everyone", "Treffen für alle beenden"],
  end_confirm: ["End the meeting for everyone now?", "Das Treffen jetzt für alle beenden?"],
  slug_warning_short: ["This room name is short and easy to guess.", "Dieser Raumname ist kurz und leicht zu erraten."],
  slug_warning_guessable: ["This room name is easy to guess.", "Dieser Raumname ist leicht zu erraten."],
};

const STORAGE_KEY = "kreis.lang";
let lang = pickLanguage();
const listeners = [];

function pickLanguage() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === "de" || saved === "en") return saved;
  } catch (_) {
    /* storage can be blocked; the browser language still works */
  }
  const nav = (navigator.language || "en").toLowerCase();
  return nav.startsWith("de") ? "de" : "en";
}

/** The current language, "de" or "en". */
export function currentLang() {
  return lang;
}

/** The sentence for `key` in the current language, with {name} placeholders filled. */
export function t(key, vars = {}) {
  // own keys only: a code from the server ("constructor", "__proto__") is not a text
  const pair = Object.hasOwn(TEXTS, key) ? TEXTS[key] : null;
  if (!pair) return String(key);
  const text = pair[lang === "de" ? 1 : 0];
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : ""));
}

/** Fills every data-i18n* element under `root`. */
export function applyTexts(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

/** Switches language, remembers it and re-renders. */
export function setLang(next) {
  lang = next === "de" ? "de" : "en";
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch (_) {
    /* not remembered; fine */
  }
  applyTexts();
  for (const fn of listeners) fn(lang);
}

/** Calls `fn` after every language switch (for text built in JS). */
export function onLangChange(fn) {
  listeners.push(fn);
}

/** Wires a button that toggles between German and English. */
export function bindLangButton(button) {
  const render = () => {
    button.textContent = t("lang_switch");
    button.setAttribute("aria-label", t("lang_switch_label"));
  };
  button.addEventListener("click", () => setLang(lang === "de" ? "en" : "de"));
  onLangChange(render);
  render();
}

/** A user-facing sentence for a server `error` message. */
export function errorText(err) {
  const code = err && err.code;
  if (code === "rate_limited") return t("err_rate_limited", { s: err.retry_after ?? 30 });
  if (code && Object.hasOwn(TEXTS, "err_" + code)) return t("err_" + code);
  return t("err_generic", { msg: (err && (err.message || err.code)) || "?" });
}
