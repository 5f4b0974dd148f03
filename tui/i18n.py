"""Every sentence the console shows, in English and German, and the current language.

The language comes from `--lang`, else `KREIS_LANG`, `LC_ALL`, `LC_MESSAGES` or `LANG`
(German when it starts with `de`), and can be switched at runtime (F2). The console is
one process with one leader in front of it, so the current language is process state
here rather than threaded through every widget.
"""

from __future__ import annotations

from app.i18n import Lang, normalise_lang, terminal_lang

__all__ = [
    "TEXTS",
    "Lang",
    "current_lang",
    "label",
    "normalise_lang",
    "set_lang",
    "t",
    "terminal_lang",
]

TEXTS: dict[str, tuple[str, str]] = {
    # key: (English, German)
    "app.title": ("Kreis console", "Kreis-Konsole"),
    "key.help": ("Help", "Hilfe"),
    "key.lang": ("Deutsch", "English"),
    "key.quit": ("Quit", "Beenden"),
    "key.back": ("Back", "Zurück"),
    # login
    "login.title": ("Log in as group leader", "Als Gruppenleitung anmelden"),
    "login.intro": (
        "Enter the address of your Kreis server, your group and the group password. "
        "The address and group are remembered on this computer; the password never is.",
        "Adresse des Kreis-Servers, Gruppe und Gruppenpasswort eingeben. Adresse und "
        "Gruppe merkt sich dieser Computer, das Passwort nie.",
    ),
    "login.server": ("Server address", "Server-Adresse"),
    "login.group": ("Group", "Gruppe"),
    "login.password": ("Group password", "Gruppenpasswort"),
    "login.submit": ("Log in", "Anmelden"),
    "login.busy": ("Connecting…", "Verbinde…"),
    "login.missing": (
        "Please fill in server address, group and password.",
        "Bitte Server-Adresse, Gruppe und Passwort ausfüllen.",
    ),
    # errors shown to the leader
    "err.bad_credentials": (
        "Group or password is wrong. Please check both and try again.",
        "Gruppe oder Passwort stimmt nicht. Bitte beides prüfen und erneut versuchen.",
    ),
    "err.rate_limited": (
        "Too many attempts. Please wait {seconds} seconds before trying again.",
        "Zu viele Versuche. Bitte {seconds} Sekunden warten und dann erneut versuchen.",
    ),
    "err.unreachable": (
        "The server cannot be reached. Check the address and your internet connection.",
        "Der Server ist nicht erreichbar. Bitte Adresse und Internetverbindung prüfen.",
    ),
    "err.bad_certificate": (
        "The server's certificate is not trusted (TLS check failed). This may not be "
        "your server: do not log in, ask whoever runs it.",
        "Dem Zertifikat des Servers wird nicht vertraut (TLS-Prüfung fehlgeschlagen). "
        "Das ist vielleicht nicht Ihr Server: nicht anmelden, die Betreuung fragen.",
    ),
    "err.timeout": (
        "The server did not answer in time. Please try again.",
        "Der Server hat nicht rechtzeitig geantwortet. Bitte erneut versuchen.",
    ),
    "err.no_such_room": (
        "This room does not exist (any more).",
        "Diesen Raum gibt es nicht (mehr).",
    ),
    "err.not_allowed": ("You may not do that here.", "Das ist hier nicht erlaubt."),
    "err.room_exists": (
        "A room with this address is already running.",
        "Ein Raum mit dieser Adresse läuft bereits.",
    ),
    "err.bad_slug": (
        "This room address is not allowed: use 3–64 of a-z, 0-9 and '-'.",
        "Diese Raumadresse geht nicht: 3–64 Zeichen aus a-z, 0-9 und '-'.",
    ),
    "err.reserved_slug": (
        "This room address is reserved. Please choose another.",
        "Diese Raumadresse ist reserviert. Bitte eine andere wählen.",
    ),
    "err.e2ee_on": (
        "Dial-in is not possible while end-to-end encryption is on.",
        "Telefoneinwahl geht nicht, solange die Ende-zu-Ende-Verschlüsselung an ist.",
    ),
    "err.e2ee_console_audio": (
        "The console's audio is not end-to-end encrypted, so it is off while the room is "
        "encrypted. You can still lead the room; switch encryption off to talk and listen here.",
        "Der Ton der Konsole ist nicht Ende-zu-Ende-verschlüsselt und bleibt deshalb aus, "
        "solange der Raum verschlüsselt ist. Sie können den Raum weiter leiten; zum Hören und "
        "Sprechen hier die Verschlüsselung ausschalten.",
    ),
    "err.no_such_participant": (
        "This person is no longer there.",
        "Diese Person ist nicht mehr da.",
    ),
    "err.room_closed": (
        "This room is not open: it has not started yet, is locked or needs its password.",
        "Dieser Raum ist nicht offen: Er hat noch nicht begonnen, ist gesperrt oder "
        "braucht sein Passwort.",
    ),
    "err.console_not_leader": (
        "The console can only enter rooms of the group you lead.",
        "Die Konsole kann nur Räume der Gruppe betreten, die Sie leiten.",
    ),
    "err.reserved_name": (
        "This name is reserved for the leaders. Please choose another.",
        "Dieser Name ist der Leitung vorbehalten. Bitte einen anderen wählen.",
    ),
    "err.room_full": (
        "The room is full. Someone has to leave before anyone else can come in.",
        "Der Raum ist voll. Erst wenn jemand geht, kann noch jemand herein.",
    ),
    "err.lobby_full": (
        "The lobby is full. Let people in or send some away first.",
        "Der Warteraum ist voll. Erst Wartende einlassen oder abweisen.",
    ),
    "err.other": ("The server says: {message}", "Der Server meldet: {message}"),
    # connection
    "conn.online": ("connected", "verbunden"),
    "conn.reconnecting": (
        "connection lost – reconnecting…",
        "Verbindung unterbrochen – verbinde neu…",
    ),
    "conn.back": ("Connection restored.", "Verbindung wiederhergestellt."),
    "conn.failed": (
        "Could not reconnect: {reason}. Still trying…",
        "Neu verbinden klappt nicht: {reason}. Versuche weiter…",
    ),
    # rooms
    "rooms.title": ("Live rooms of group {group}", "Laufende Räume der Gruppe {group}"),
    "rooms.none": ("No room is running right now.", "Gerade läuft kein Raum."),
    "rooms.col.slug": ("Room", "Raum"),
    "rooms.col.people": ("People", "Personen"),
    "rooms.col.lobby": ("Waiting", "Wartend"),
    "rooms.col.settings": ("Settings", "Einstellungen"),
    "rooms.new": ("Start a new room", "Neuen Raum starten"),
    "rooms.slug": (
        "Room address (a-z, 0-9, -), e.g. tuesday-evening",
        "Raumadresse (a-z, 0-9, -), z. B. dienstag-abend",
    ),
    "rooms.lobby": ("Lobby: guests wait until admitted", "Warteraum: Gäste warten auf Einlass"),
    "rooms.password": ("Room password (optional)", "Raumpasswort (freiwillig)"),
    "rooms.dial_in": ("Allow dial-in by phone", "Telefoneinwahl erlauben"),
    "rooms.create": ("Start room", "Raum starten"),
    "rooms.url": ("Address to share: {url}", "Adresse zum Weitergeben: {url}"),
    "slug.ok": ("This address is free.", "Diese Adresse ist frei."),
    "slug.short": (
        "Short addresses are easy to guess. Better: {suggestion}",
        "Kurze Adressen sind leicht zu erraten. Besser: {suggestion}",
    ),
    "slug.guessable": (
        "This address is easy to guess. Better: {suggestion}",
        "Diese Adresse ist leicht zu erraten. Besser: {suggestion}",
    ),
    "slug.bad": (
        "Not possible: {reason}. Suggestion: {suggestion}",
        "Geht nicht: {reason}. Vorschlag: {suggestion}",
    ),
    "key.open": ("Open room", "Raum öffnen"),
    "key.new": ("New room", "Neuer Raum"),
    "key.refresh": ("Refresh", "Aktualisieren"),
    "key.copy": ("Copy address", "Adresse kopieren"),
    "copied": ("Address copied: {url}", "Adresse kopiert: {url}"),
    # room
    "room.lobby": (
        "Lobby – waiting ({count})",
        "Warteraum – wartend ({count})",
    ),
    "room.lobby_empty": ("Nobody is waiting.", "Niemand wartet."),
    "room.lobby_refused": (
        "Turned away at the door: {count}",
        "An der Tür abgewiesen: {count}",
    ),
    "room.participants": ("In the room ({count})", "Im Raum ({count})"),
    "room.chat": ("Chat", "Chat"),
    "room.chat_placeholder": ("Write to everyone, Enter sends", "An alle schreiben, Enter sendet"),
    "room.knock": (
        "{name} is knocking and waits in the lobby.",
        "{name} klopft und wartet im Warteraum.",
    ),
    "room.ended": ("The room {slug} has ended.", "Der Raum {slug} ist beendet."),
    "room.gone": ("The room {slug} is gone.", "Den Raum {slug} gibt es nicht mehr."),
    "room.select_entrant": (
        "First pick someone in the lobby.",
        "Zuerst jemanden im Warteraum auswählen.",
    ),
    "room.select_participant": (
        "First pick someone in the room.",
        "Zuerst jemanden im Raum auswählen.",
    ),
    "room.from_lobby": ("(lobby) {name}", "(Warteraum) {name}"),
    "room.to": ("to {name}", "an {name}"),
    "col.name": ("Name", "Name"),
    "col.role": ("Role", "Rolle"),
    "col.mic": ("Mic", "Mikro"),
    "col.camera": ("Camera", "Kamera"),
    "col.screen": ("Screen", "Teilen"),
    "col.hand": ("Hand", "Hand"),
    "col.kind": ("Via", "Über"),
    "col.e2ee": ("E2EE", "E2EE"),
    "col.since": ("Since", "Seit"),
    "yes": ("yes", "ja"),
    "no": ("–", "–"),
    "on": ("on", "an"),
    "off": ("off", "aus"),
    "role.leader": ("Leader", "Leitung"),
    "role.coleader": ("Co-leader", "Co-Leitung"),
    "role.guest": ("Guest", "Gast"),
    "role.phone": ("Phone", "Telefon"),
    "role.with_kind": ("{role} ({kind})", "{role} ({kind})"),
    "kind.browser": ("Browser", "Browser"),
    "kind.phone": ("Phone", "Telefon"),
    "kind.console": ("Console", "Konsole"),
    "via.browser": ("browser", "Browser"),
    "via.phone": ("phone", "Telefon"),
    "via.console": ("console", "Konsole"),
    "away": ("reconnecting", "getrennt"),
    "e2ee.on": ("on", "an"),
    "e2ee.off": ("off", "aus"),
    "e2ee.unable": ("can't", "geht nicht"),
    "hdr.room": ("Room", "Raum"),
    "hdr.lobby": ("Lobby", "Warteraum"),
    "hdr.locked": ("Locked", "Gesperrt"),
    "hdr.password": ("Password", "Passwort"),
    "hdr.e2ee": ("E2EE", "E2EE"),
    "hdr.dial_in": ("Dial-in", "Einwahl"),
    "hdr.dial_in_detail": ("call {numbers}, PIN {pin}", "{numbers} anrufen, PIN {pin}"),
    # room keys
    "key.admit": ("Admit", "Einlassen"),
    "key.deny": ("Deny", "Abweisen"),
    "key.admit_all": ("Admit all", "Alle einlassen"),
    "key.whisper": ("Message to waiting", "Nachricht an Wartende"),
    "key.mute": ("Ask to mute", "Stumm bitten"),
    "key.mute_now": ("Mute", "Stummschalten"),
    "key.mute_all": ("Mute all", "Alle stumm"),
    "key.lower_hand": ("Lower hand", "Hand senken"),
    "key.remove": ("Remove", "Entfernen"),
    "key.promote": ("Co-leader", "Co-Leitung"),
    "key.lock": ("Lock", "Sperren"),
    "key.lobby": ("Lobby on/off", "Warteraum an/aus"),
    "key.password": ("Password", "Passwort"),
    "key.e2ee": ("E2EE", "E2EE"),
    "key.dial_in": ("Dial-in", "Einwahl"),
    "key.end": ("End room", "Raum beenden"),
    "key.chat": ("Chat", "Chat"),
    "key.focus_lobby": ("Lobby", "Warteraum"),
    "key.focus_people": ("People", "Personen"),
    # dialogs
    "confirm.yes": ("Yes", "Ja"),
    "confirm.no": ("No", "Nein"),
    "confirm.cancel": ("Cancel", "Abbrechen"),
    "confirm.ok": ("OK", "OK"),
    "confirm.admit_all": (
        "Let all {count} waiting people into the room?",
        "Alle {count} Wartenden in den Raum lassen?",
    ),
    "confirm.end": (
        "End the room {slug} for everyone? Everybody is disconnected and the chat is gone.",
        "Raum {slug} für alle beenden? Alle werden getrennt, der Chat ist weg.",
    ),
    "confirm.mute_all": (
        "Switch off every microphone in the room but yours? Everyone can switch theirs on again.",
        "Alle Mikrofone im Raum außer deinem ausschalten? Alle können ihres wieder einschalten.",
    ),
    "notice.mute_asked": (
        "{name} was asked to switch off their microphone.",
        "{name} wurde gebeten, das Mikrofon auszuschalten.",
    ),
    "notice.no_hand": ("{name} has no hand raised.", "{name} hat keine Hand gehoben."),
    "room.nobody_to_mute": ("Nobody else is in the room.", "Sonst ist niemand im Raum."),
    "confirm.remove": ("Remove {name} from the room?", "{name} aus dem Raum entfernen?"),
    "confirm.remove_only": ("Remove", "Entfernen"),
    "confirm.remove_bar": ("Remove and bar", "Entfernen und sperren"),
    "confirm.remove_hint": (
        "'Bar' means this name cannot come back into this room until it ends.",
        "'Sperren' heißt: dieser Name kommt nicht mehr in diesen Raum, bis er endet.",
    ),
    "confirm.phones": (
        "Phone callers cannot take part with end-to-end encryption. Switching it on "
        "disconnects them. Switch on anyway?",
        "Telefonteilnehmende können bei Ende-zu-Ende-Verschlüsselung nicht teilnehmen. "
        "Einschalten trennt sie. Trotzdem einschalten?",
    ),
    "prompt.password": (
        "New room password (4–128 characters). Leave empty to remove the password.",
        "Neues Raumpasswort (4–128 Zeichen). Leer lassen, um das Passwort zu entfernen.",
    ),
    "prompt.whisper": (
        "Message to {name} (only they see it):",
        "Nachricht an {name} (nur für diese Person):",
    ),
    "password.set": ("The room password is set.", "Das Raumpasswort ist gesetzt."),
    "password.cleared": ("The room password is removed.", "Das Raumpasswort ist entfernt."),
    "password.short": ("At least 4 characters, please.", "Bitte mindestens 4 Zeichen."),
    # audio
    "audio.none": (
        "No sound device found ({reason}). The console carries on without audio.",
        "Kein Audiogerät gefunden ({reason}). Die Konsole läuft ohne Ton weiter.",
    ),
    "audio.on": ("Audio: you can listen and talk.", "Ton: Sie können zuhören und sprechen."),
    "audio.failed": ("Audio stopped: {reason}", "Ton ausgefallen: {reason}"),
    # help
    "help.title": ("Help – what each key does", "Hilfe – was jede Taste tut"),
    "help.close": ("Press Escape or ? to close this help.", "Escape oder ? schließt diese Hilfe."),
    "help.general": (
        "Everywhere: ? or F1 opens this help, F2 switches between German and English, "
        "Ctrl+Q quits the console. The bar at the bottom always shows the keys you can use.",
        "Überall: ? oder F1 öffnet diese Hilfe, F2 wechselt zwischen Deutsch und Englisch, "
        "Strg+Q beendet die Konsole. Die Leiste unten zeigt immer die möglichen Tasten.",
    ),
    "help.rooms": ("On the list of rooms", "In der Raumliste"),
    "help.room": ("In a room", "In einem Raum"),
    "help.open": (
        "Enter: open the selected room to run it (you do not join with camera or mic).",
        "Enter: den ausgewählten Raum öffnen und leiten (ohne Kamera oder Mikro).",
    ),
    "help.new": (
        "n: start a new room. Pick an address that is hard to guess; the console warns you.",
        "n: neuen Raum starten. Eine schwer zu erratende Adresse wählen; die Konsole warnt.",
    ),
    "help.refresh": ("F5: load the list of rooms again.", "F5: die Raumliste neu laden."),
    "help.copy": (
        "u: copy the room address, to send it to your group.",
        "u: die Raumadresse kopieren, um sie der Gruppe zu schicken.",
    ),
    "help.lobby_focus": (
        "1 / 2 / c: go to the lobby list, the people list or the chat. Arrow keys pick a row.",
        "1 / 2 / c: zur Warteliste, zur Personenliste oder zum Chat. "
        "Pfeiltasten wählen eine Zeile.",
    ),
    "help.admit": (
        "a: let the selected waiting person in. When someone knocks, the terminal beeps.",
        "a: die ausgewählte wartende Person einlassen. Klopft jemand, piept das Terminal.",
    ),
    "help.deny": (
        "d: send the selected waiting person away. They are told they were not let in.",
        "d: die ausgewählte wartende Person abweisen. "
        "Sie erfährt, dass sie nicht eingelassen wurde.",
    ),
    "help.admit_all": (
        "A (Shift+a): let everyone waiting in, after you confirm.",
        "A (Umschalt+a): alle Wartenden einlassen, nach einer Rückfrage.",
    ),
    "help.whisper": (
        "w: write a message only the selected waiting person sees.",
        "w: eine Nachricht schreiben, die nur die ausgewählte wartende Person sieht.",
    ),
    "help.mute": (
        "m: ask the selected person to switch off their microphone; they decide.",
        "m: die ausgewählte Person bitten, ihr Mikrofon auszuschalten; sie entscheidet.",
    ),
    "help.mute_now": (
        "M (Shift+m): switch the selected person's microphone off; they can switch it on again.",
        "M (Umschalt+m): das Mikrofon der ausgewählten Person ausschalten; sie kann es"
        " wieder einschalten.",
    ),
    "help.mute_all": (
        "S (Shift+s): switch off every microphone but yours, after you confirm.",
        "S (Umschalt+s): alle Mikrofone außer deinem ausschalten, nach einer Rückfrage.",
    ),
    "help.lower_hand": (
        "h: lower the selected person's raised hand. The Hand column shows the order in"
        " which hands went up (✋ 1 first).",
        "h: die gehobene Hand der ausgewählten Person senken. Die Spalte Hand zeigt die"
        " Reihenfolge, in der sich Hände gehoben haben (✋ 1 zuerst).",
    ),
    "help.remove": (
        "r: remove the selected person from the room (you can also bar them).",
        "r: die ausgewählte Person aus dem Raum entfernen (auf Wunsch auch sperren).",
    ),
    "help.promote": (
        "p: make the selected person a co-leader, who can then admit and remove too.",
        "p: die ausgewählte Person zur Co-Leitung machen; "
        "sie darf dann auch einlassen und entfernen.",
    ),
    "help.lock": (
        "l: lock or unlock the room. Locked: nobody new can knock.",
        "l: den Raum sperren oder öffnen. Gesperrt: niemand Neues kann anklopfen.",
    ),
    "help.lobby": (
        "o: switch the lobby on or off. Off: new people come straight in.",
        "o: den Warteraum an- oder ausschalten. Aus: neue Personen kommen direkt herein.",
    ),
    "help.password": (
        "k: set or remove the room password. Guests must then type it before they knock.",
        "k: das Raumpasswort setzen oder entfernen. "
        "Gäste müssen es dann vor dem Anklopfen eingeben.",
    ),
    "help.e2ee": (
        "e: end-to-end encryption on or off. "
        "On: not even the server can listen; phones cannot join.",
        "e: Ende-zu-Ende-Verschlüsselung an oder aus. An: nicht einmal der Server hört mit; "
        "Telefone können nicht teilnehmen.",
    ),
    "help.dial_in": (
        "i: dial-in by phone on or off. The number and PIN appear at the top.",
        "i: Telefoneinwahl an oder aus. Nummer und PIN stehen dann oben.",
    ),
    "help.end": (
        "x: end the room for everyone, after you confirm. Nothing of it is kept.",
        "x: den Raum für alle beenden, nach einer Rückfrage. Nichts davon wird aufbewahrt.",
    ),
    "help.chat": (
        "c: write in the chat. Enter sends to everyone, Escape leaves the chat line.",
        "c: im Chat schreiben. Enter sendet an alle, Escape verlässt die Chatzeile.",
    ),
    "help.back": (
        "Escape: back to the list of rooms. The room keeps running.",
        "Escape: zurück zur Raumliste. Der Raum läuft weiter.",
    ),
}


class _State:
    lang: Lang = "en"


def set_lang(lang: str) -> Lang:
    """Makes `lang` the current language and returns it."""
    _State.lang = normalise_lang(lang)
    return _State.lang


def current_lang() -> Lang:
    """The current language."""
    return _State.lang


def t(key: str, **values: object) -> str:
    """The sentence `key` in the current language, with `values` filled in."""
    en, de = TEXTS[key]
    text = de if _State.lang == "de" else en
    return text.format(**values) if values else text


def label(text: str) -> str:
    """`text` translated if it is a text key (binding descriptions are), else as it is."""
    return t(text) if text in TEXTS else text
