"""Errors of the server package that can reach a person, each with a stable code.

Every error a user may see carries a `code` that never changes (clients and tests
match on it) and a sentence in English and German that a non-technical group
leader understands. `ProtocolError` is what the signalling handlers raise; the
server turns it into an `error` message (docs/protocol.md, "Error codes").
"""

from __future__ import annotations

from app.i18n import normalise_lang

ERROR_TEXTS: dict[str, tuple[str, str]] = {
    # code: (English, German)
    "bad_json": (
        "The message could not be read.",
        "Die Nachricht konnte nicht gelesen werden.",
    ),
    "bad_message": (
        "The message is incomplete or contains a wrong value.",
        "Die Nachricht ist unvollständig oder enthält einen falschen Wert.",
    ),
    "unknown_type": (
        "This kind of message is not known.",
        "Diese Art von Nachricht ist unbekannt.",
    ),
    "too_deep": (
        "The message is nested too deeply.",
        "Die Nachricht ist zu tief verschachtelt.",
    ),
    "not_ready": (
        "The connection is not ready yet. Please try again.",
        "Die Verbindung ist noch nicht bereit. Bitte noch einmal versuchen.",
    ),
    "bad_version": (
        "This program is too old or too new for this server. Please update it.",
        "Dieses Programm passt nicht zu diesem Server. Bitte aktualisieren.",
    ),
    "not_allowed": (
        "You are not allowed to do this.",
        "Das dürfen Sie nicht.",
    ),
    "not_admitted": (
        "Please wait until you have been let into the room.",
        "Bitte warten Sie, bis Sie in den Raum eingelassen wurden.",
    ),
    "bad_credentials": (
        "The group name or the password is wrong.",
        "Der Gruppenname oder das Passwort ist falsch.",
    ),
    "rate_limited": (
        "Too many attempts. Please wait a moment and try again.",
        "Zu viele Versuche. Bitte kurz warten und dann noch einmal versuchen.",
    ),
    "password_required": (
        "This room has a password. Please enter it.",
        "Dieser Raum hat ein Passwort. Bitte geben Sie es ein.",
    ),
    "bad_room_password": (
        "The room password is wrong.",
        "Das Raumpasswort ist falsch.",
    ),
    "bad_slug": (
        "The room name may only use a–z, 0–9 and '-' (3 to 64 characters, "
        "not starting or ending with '-').",
        "Der Raumname darf nur a–z, 0–9 und '-' enthalten (3 bis 64 Zeichen, "
        "nicht mit '-' am Anfang oder Ende).",
    ),
    "reserved_slug": (
        "This room name is reserved. Please choose another one.",
        "Dieser Raumname ist reserviert. Bitte wählen Sie einen anderen.",
    ),
    "room_exists": (
        "A room with this name is already open. Please choose another name.",
        "Ein Raum mit diesem Namen ist schon offen. Bitte wählen Sie einen anderen Namen.",
    ),
    "no_such_room": (
        "There is no open room with this name.",
        "Es gibt keinen offenen Raum mit diesem Namen.",
    ),
    "room_locked": (
        "The room is locked. Nobody new can come in right now.",
        "Der Raum ist abgeschlossen. Gerade kann niemand Neues hinein.",
    ),
    "room_closed": (
        "This room is not open to you right now. It may not have started yet, it may be "
        "locked, or it may need a password. Please check your link and the password, or "
        "try again later.",
        "Dieser Raum ist für Sie gerade nicht offen. Vielleicht hat er noch nicht "
        "begonnen, ist abgeschlossen oder braucht ein Passwort. Bitte prüfen Sie Ihren "
        "Link und das Passwort oder versuchen Sie es später noch einmal.",
    ),
    "room_full": (
        "The room is full. Someone has to leave before anyone else can come in.",
        "Der Raum ist voll. Erst wenn jemand geht, kann noch jemand hinein.",
    ),
    "lobby_full": (
        "Too many people are waiting to come in right now. Please try again in a moment.",
        "Gerade warten zu viele Menschen auf Einlass. Bitte gleich noch einmal versuchen.",
    ),
    "console_not_leader": (
        "The console can only join rooms of the group it is logged in to.",
        "Die Konsole kann nur Räumen der Gruppe beitreten, bei der sie angemeldet ist.",
    ),
    "reserved_name": (
        "This name is kept for the group's leader. Please choose another name.",
        "Dieser Name ist der Gruppenleitung vorbehalten. Bitte wählen Sie einen anderen.",
    ),
    "barred": (
        "You have been removed from this room and cannot come back.",
        "Sie wurden aus diesem Raum entfernt und können nicht zurückkommen.",
    ),
    "bad_name": (
        "Please enter a name with 1 to 40 characters.",
        "Bitte geben Sie einen Namen mit 1 bis 40 Zeichen ein.",
    ),
    "already_joined": (
        "You are already in a room or waiting in its lobby.",
        "Sie sind schon in einem Raum oder warten in dessen Vorraum.",
    ),
    "no_such_participant": (
        "This person is no longer in the room or the lobby.",
        "Diese Person ist nicht mehr im Raum oder im Vorraum.",
    ),
    "bad_sdp": (
        "The audio or video connection could not be set up.",
        "Die Audio- oder Videoverbindung konnte nicht aufgebaut werden.",
    ),
    "bad_pin": (
        "The PIN is wrong.",
        "Die PIN ist falsch.",
    ),
    "e2ee_on": (
        "Phone dial-in is not possible while end-to-end encryption is on.",
        "Telefon-Einwahl ist nicht möglich, solange die Ende-zu-Ende-Verschlüsselung an ist.",
    ),
    "e2ee_console_audio": (
        "The console's audio is not end-to-end encrypted, so it cannot join while end-to-end "
        "encryption is on. Follow the room without audio, or switch encryption off.",
        "Der Ton der Konsole ist nicht Ende-zu-Ende-verschlüsselt und deshalb nicht möglich, "
        "solange die Ende-zu-Ende-Verschlüsselung an ist. Verfolgen Sie den Raum ohne Ton, "
        "oder schalten Sie die Verschlüsselung aus.",
    ),
    "phones_present": (
        "Phone callers are in the room. Turning on end-to-end encryption would disconnect them.",
        "Es sind Anrufer per Telefon im Raum. Die Ende-zu-Ende-Verschlüsselung würde sie trennen.",
    ),
    "internal": (
        "Something went wrong on the server. Nothing was changed.",
        "Auf dem Server ist etwas schiefgegangen. Es wurde nichts verändert.",
    ),
}


class KreisError(Exception):
    """Base of every Kreis error that can reach a person.

    `code` is stable; `en` and `de` are the sentence shown to a person.
    """

    code: str = "internal"

    def __init__(self, code: str, en: str, de: str) -> None:
        super().__init__(en)
        self.code = code
        self.en = en
        self.de = de

    def message(self, lang: str | None = "en") -> str:
        """The sentence for a person, in `lang` (`de` or `en`; anything else is English)."""
        return self.de if normalise_lang(lang) == "de" else self.en

    def __str__(self) -> str:
        return self.en


class ConfigError(KreisError):
    """The configuration file cannot be used.

    `key` is the dotted key at fault (`media.port_min`), or "" for the whole file;
    `problem` is the English description, `problem_de` the German one.
    """

    def __init__(self, key: str, problem: str, problem_de: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.problem_de = problem_de if problem_de is not None else problem
        prefix = f"{key}: " if key else ""
        super().__init__("config", prefix + problem, prefix + self.problem_de)


class ProtocolError(KreisError):
    """A signalling message was refused; becomes an `error` message with this `code`.

    `detail` (English) replaces the generic sentence when the server knows more, for
    example which field of a `bad_message` is wrong. `ref` is the `type` of the
    message that caused it; `retry_after` is set for `rate_limited`.
    """

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        detail_de: str | None = None,
        ref: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        en, de = ERROR_TEXTS.get(code, ERROR_TEXTS["internal"])
        if detail:
            en = f"{en} ({detail})"
            de = f"{de} ({detail_de or detail})"
        super().__init__(code, en, de)
        self.ref = ref
        self.retry_after = retry_after


class GroupError(KreisError):
    """An admin command on groups failed (`group_exists`, `no_such_group`, `bad_group`, …)."""
