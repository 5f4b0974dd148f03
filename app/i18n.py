"""Choosing German or English, and the server's and CLI's own sentences in both.

Browsers tell us their language with `Accept-Language`, terminals with `KREIS_LANG`,
`LC_ALL` or `LANG`. Everything a person reads exists in German and English; any
language we do not have falls back to English.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

Lang = Literal["de", "en"]

TEXTS: dict[str, tuple[str, str]] = {
    # key: (English, German)
    "first_run": (
        "First start: a configuration was written to {path}\n"
        "Group (leader login): {group}\n"
        "Password: {password}\n"
        "This password is shown only once. Write it down now.",
        "Erster Start: Eine Konfiguration wurde nach {path} geschrieben.\n"
        "Gruppe (Anmeldung für Leitende): {group}\n"
        "Passwort: {password}\n"
        "Dieses Passwort wird nur dieses eine Mal angezeigt. Bitte jetzt notieren.",
    ),
    "needs_extra": (
        "'kreis {command}' needs the package {package}, which is not installed.\n"
        "Install it with: pip install 'kreis[{extra}]'",
        "'kreis {command}' braucht das Paket {package}, das nicht installiert ist.\n"
        "Installieren mit: pip install 'kreis[{extra}]'",
    ),
    "group_added": (
        "Group {group} added.",
        "Gruppe {group} hinzugefügt.",
    ),
    "group_passwd": (
        "Password of group {group} changed.",
        "Passwort der Gruppe {group} geändert.",
    ),
    "group_removed": (
        "Group {group} removed.",
        "Gruppe {group} entfernt.",
    ),
    "generated_password": (
        "Password of group {group}: {password}\nIt is shown only once. Write it down now.",
        "Passwort der Gruppe {group}: {password}\n"
        "Es wird nur dieses eine Mal angezeigt. Bitte jetzt notieren.",
    ),
    "no_groups": (
        "No groups configured.",
        "Keine Gruppen eingerichtet.",
    ),
    "prompt_password": (
        "New password for group {group}: ",
        "Neues Passwort für Gruppe {group}: ",
    ),
    "prompt_repeat": (
        "Repeat the password: ",
        "Passwort wiederholen: ",
    ),
    "restart_hint": (
        "Restart the server (kreis serve) so that it reads the change.",
        "Bitte den Server (kreis serve) neu starten, damit er die Änderung liest.",
    ),
    "error_prefix": (
        "Error: {message}",
        "Fehler: {message}",
    ),
    "port_taken": (
        "Error: port {port} on {host} is already in use (another program, or Kreis is"
        " already running). Change `port` under [server] in {path}, or start with"
        " --port OTHER_PORT.",
        "Fehler: Port {port} auf {host} ist schon belegt (ein anderes Programm, oder Kreis"
        " läuft schon). Ändere `port` unter [server] in {path} oder starte mit"
        " --port ANDERER_PORT.",
    ),
    "port_denied": (
        "Error: port {port} on {host} may not be used by this user (ports below 1024 need"
        " extra rights). Change `port` under [server] in {path}, or start with --port 8080.",
        "Fehler: Port {port} auf {host} darf dieser Benutzer nicht öffnen (Ports unter 1024"
        " brauchen besondere Rechte). Ändere `port` unter [server] in {path} oder starte"
        " mit --port 8080.",
    ),
    "config.bool": ("must be true or false", "muss true oder false sein"),
    "config.int": (
        "must be an integer between {low} and {high}",
        "muss eine ganze Zahl zwischen {low} und {high} sein",
    ),
    "config.str": ("must be a string (text in quotes)", "muss ein Text in Anführungszeichen sein"),
    "config.list": (
        'must be a list of strings, e.g. ["a", "b"]',
        'muss eine Liste von Texten sein, z. B. ["a", "b"]',
    ),
    "config.choice": ("must be one of {choices}", "muss eines davon sein: {choices}"),
    "config.url": (
        "must be empty or a URL starting with http:// or https://",
        "muss leer sein oder eine mit http:// oder https:// beginnende URL",
    ),
    "config.server_url": (
        "must be a URL starting with http://, https://, ws:// or wss://",
        "muss eine mit http://, https://, ws:// oder wss:// beginnende URL sein",
    ),
    "config.turn_url": (
        "must be empty or a URL starting with turn: or turns:",
        "muss leer sein oder eine mit turn: oder turns: beginnende URL",
    ),
    "config.secret_short": (
        "must be empty or a secret of at least 32 characters",
        "muss leer sein oder ein Geheimnis aus mindestens 32 Zeichen",
    ),
    "config.ip": (
        "must be an IP address such as 127.0.0.1",
        "muss eine IP-Adresse sein, z. B. 127.0.0.1",
    ),
    "config.network": (
        "{item!r} is not an IP address or network",
        "{item!r} ist keine IP-Adresse und kein Netz",
    ),
    "config.table": ("must be a table ([{key}])", "muss eine Tabelle sein ([{key}])"),
    "config.unknown": ("unknown key", "unbekannter Schlüssel"),
    "config.unknown_near": (
        "unknown key (did you mean {near}?)",
        "unbekannter Schlüssel (meinten Sie {near}?)",
    ),
    "config.group_id": (
        "a group id must be 2 to 32 characters of a-z, 0-9 and '-'",
        "eine Gruppen-Id muss aus 2 bis 32 Zeichen a-z, 0-9 und '-' bestehen",
    ),
    "config.hash": (
        "must be a hash written by 'kreis group passwd' (scrypt$…)",
        "muss ein von 'kreis group passwd' geschriebener Hash sein (scrypt$…)",
    ),
    "config.port_order": (
        "must not be greater than media.port_max",
        "darf nicht größer als media.port_max sein",
    ),
    "config.tls_pair": (
        "server.tls_cert and server.tls_key must be set together",
        "server.tls_cert und server.tls_key müssen zusammen gesetzt sein",
    ),
    "config.turn_secret": (
        "must be set when turn.url is set",
        "muss gesetzt sein, wenn turn.url gesetzt ist",
    ),
    "config.redis_url": (
        "must be a URL starting with redis://, rediss:// or unix://",
        "muss eine mit redis://, rediss:// oder unix:// beginnende URL sein",
    ),
    "config.cluster_key": (
        "must be at least 32 characters (e.g. from 'openssl rand -base64 48'); the same "
        "on every node",
        "muss mindestens 32 Zeichen lang sein (z. B. aus 'openssl rand -base64 48'); auf "
        "jedem Knoten derselbe",
    ),
    "config.cluster_address": (
        "must be the URL the other nodes reach this node at (http://… or https://…)",
        "muss die URL sein, unter der die anderen Knoten diesen erreichen (http://… oder "
        "https://…)",
    ),
    "config.cluster_ttl": (
        "must be at least twice cluster.heartbeat_seconds",
        "muss mindestens doppelt so groß wie cluster.heartbeat_seconds sein",
    ),
    "config.no_groups": (
        "no group is configured; add one with 'kreis group add NAME'",
        "keine Gruppe eingerichtet; mit 'kreis group add NAME' eine hinzufügen",
    ),
    "config.unsafe_bind": (
        "listening on {host} is refused without encryption: passwords and chat would "
        "travel in clear text. Set server.tls_cert and server.tls_key, or set "
        "server.behind_proxy = true when a reverse proxy with HTTPS is in front, or "
        "listen on 127.0.0.1.",
        "Lauschen auf {host} ohne Verschlüsselung wird verweigert: Passwörter und Chat "
        "gingen im Klartext übers Netz. Bitte server.tls_cert und server.tls_key setzen, "
        "oder server.behind_proxy = true, wenn ein Reverse-Proxy mit HTTPS davor steht, "
        "oder auf 127.0.0.1 lauschen.",
    ),
    "group.exists": (
        "the group {group} exists already (change its password with 'kreis group passwd {group}')",
        "die Gruppe {group} gibt es schon (Passwort ändern mit 'kreis group passwd {group}')",
    ),
    "group.missing": (
        "there is no group {group} (see 'kreis group list')",
        "es gibt keine Gruppe {group} (siehe 'kreis group list')",
    ),
    "group.mismatch": (
        "the two passwords are not the same; nothing was changed",
        "die beiden Passwörter sind nicht gleich; nichts wurde geändert",
    ),
    "group.short": (
        "the password must have at least {min} characters; nothing was changed",
        "das Passwort muss mindestens {min} Zeichen haben; nichts wurde geändert",
    ),
    "group.long": (
        "the password must have at most {max} characters; nothing was changed",
        "das Passwort darf höchstens {max} Zeichen haben; nichts wurde geändert",
    ),
    "group.no_input": (
        "no password was entered; nothing was changed",
        "es wurde kein Passwort eingegeben; nichts wurde geändert",
    ),
    "help.description": (
        "Kreis: a meeting server for confidential groups.",
        "Kreis: ein Treffpunkt-Server für vertrauliche Gruppen.",
    ),
    "help.config": (
        "configuration file (default: {path})",
        "Konfigurationsdatei (Standard: {path})",
    ),
    "help.lang": ("language of messages", "Sprache der Meldungen"),
    "help.serve": ("start the server", "den Server starten"),
    "help.host": (
        "address to listen on (instead of server.host)",
        "Adresse, auf der der Server lauscht (statt server.host)",
    ),
    "help.port": (
        "TCP port to listen on (instead of server.port)",
        "TCP-Port, auf dem der Server lauscht (statt server.port)",
    ),
    "help.console": (
        "moderation console for leaders (a client of the server)",
        "Moderationskonsole für Leitende (ein Client des Servers)",
    ),
    "help.dial_in": (
        "SIP gateway for phone callers (a client of the server)",
        "SIP-Gateway für Anrufe per Telefon (ein Client des Servers)",
    ),
    "help.group": (
        "add, change, remove or list groups in the configuration",
        "Gruppen in der Konfiguration hinzufügen, ändern, entfernen oder auflisten",
    ),
    "help.group_add": ("add a group", "eine Gruppe hinzufügen"),
    "help.group_passwd": ("set a new group password", "ein neues Gruppenpasswort setzen"),
    "help.group_remove": ("remove a group", "eine Gruppe entfernen"),
    "help.group_list": ("list the groups", "die Gruppen auflisten"),
    "help.name": (
        "group id: 2-32 characters a-z, 0-9, '-'",
        "Gruppen-Id: 2-32 Zeichen a-z, 0-9, '-'",
    ),
    "help.generate": (
        "generate a strong password and print it once",
        "ein starkes Passwort erzeugen und einmal anzeigen",
    ),
    "help.password_stdin": (
        "read the password twice from standard input (one line each), for scripts",
        "das Passwort zweimal von der Standardeingabe lesen (je eine Zeile), für Skripte",
    ),
    "config_file": (
        "Configuration: {path}",
        "Konfiguration: {path}",
    ),
}


def normalise_lang(value: str | None) -> Lang:
    """`de` for a language tag starting with `de` (`de`, `de-AT`, `de_DE.UTF-8`), else `en`."""
    return "de" if value and value.strip().lower().startswith("de") else "en"


def pick_lang(accept_language: str | None) -> Lang:
    """The better of German and English for an HTTP `Accept-Language` header.

    Follows the quality values (`en;q=0.5, de;q=0.9` is German); without a usable
    header, English.
    """
    if not accept_language:
        return "en"
    best: tuple[float, int, Lang] | None = None
    for position, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.split("-")[0]
        if primary not in ("de", "en") or quality <= 0:
            continue
        lang: Lang = "de" if primary == "de" else "en"
        # Higher quality wins; on a tie the earlier entry wins.
        candidate = (quality, -position, lang)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else "en"


def terminal_lang(environ: Mapping[str, str] | None = None) -> Lang:
    """The language for a terminal: `KREIS_LANG`, else `LC_ALL`, `LC_MESSAGES`, `LANG`."""
    env = os.environ if environ is None else environ
    for name in ("KREIS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return normalise_lang(value)
    return "en"


def both(text_key: str, /, **values: object) -> tuple[str, str]:
    """The sentence `text_key` in English and German, placeholders filled (for `KreisError`)."""
    en, de = TEXTS[text_key]
    return en.format(**values), de.format(**values)


def t(key: str, lang: str | None, **values: object) -> str:
    """The sentence `key` in `lang`, with `{name}` placeholders filled from `values`."""
    en, de = TEXTS[key]
    text = de if normalise_lang(lang) == "de" else en
    return text.format(**values) if values else text
