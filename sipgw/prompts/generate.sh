#!/usr/bin/env bash
# Regenerates the dial-in prompts (German and English) with espeak-ng and sox.
# Output: sipgw/prompts/{de,en}/NAME.wav, 16 kHz, mono, 16-bit PCM, silence trimmed.
# An operator may record better prompts with the same names and point
# `[sip] prompts_dir` at them; missing files fall back to these.
set -euo pipefail
cd "$(dirname "$0")"
command -v espeak-ng >/dev/null || { echo "espeak-ng is missing" >&2; exit 1; }
command -v sox >/dev/null || { echo "sox is missing" >&2; exit 1; }

say() {  # say LANG VOICE NAME TEXT
    local lang=$1 voice=$2 name=$3 text=$4 tmp
    mkdir -p "$lang"
    tmp=$(mktemp --suffix=.wav)
    espeak-ng -v "$voice" -s 160 -a 120 -w "$tmp" "$text"
    sox "$tmp" -r 16000 -c 1 -b 16 "$lang/$name.wav" gain -n -3 \
        silence 1 0.05 0.5% reverse silence 1 0.05 0.5% reverse pad 0.1 0.2
    rm -f "$tmp"
}

say de de welcome "Willkommen bei Kreis. Bitte geben Sie die PIN des Treffens ein und drücken Sie die Raute-Taste."
say de de pin_wrong "Diese PIN ist nicht richtig. Bitte versuchen Sie es noch einmal."
say de de pin_failed "Die PIN war mehrmals nicht richtig. Auf Wiederhören."
say de de locked "Zu viele Versuche. Bitte rufen Sie später noch einmal an. Auf Wiederhören."
say de de lobby "Bitte warten Sie. Die Gesprächsleitung lässt Sie gleich herein."
say de de admitted "Sie sind jetzt im Treffen. Stern 6 schaltet Ihr Mikrofon stumm, Stern 9 meldet Sie zu Wort."
say de de denied "Die Gesprächsleitung hat Sie leider nicht hereingelassen. Auf Wiederhören."
say de de timeout "Es hat Sie leider niemand hereingelassen. Bitte versuchen Sie es später noch einmal."
say de de ended "Das Treffen ist beendet. Auf Wiederhören."
say de de removed "Sie wurden aus dem Treffen entfernt. Auf Wiederhören."
say de de muted "Ihr Mikrofon ist stumm."
say de de unmuted "Ihr Mikrofon ist an."
say de de hand_up "Sie haben sich zu Wort gemeldet."
say de de hand_down "Ihre Wortmeldung ist zurückgenommen."
say de de mute_request "Die Gesprächsleitung bittet Sie, Ihr Mikrofon stumm zu schalten. Drücken Sie dazu Stern 6."
say de de unavailable "Das Treffen ist gerade nicht erreichbar. Bitte versuchen Sie es später noch einmal."
say de de choose_language "Für Deutsch drücken Sie die 1."

say en en-gb welcome "Welcome to Kreis. Please enter the meeting PIN, followed by the hash key."
say en en-gb pin_wrong "This PIN is not correct. Please try again."
say en en-gb pin_failed "The PIN was wrong several times. Goodbye."
say en en-gb locked "Too many attempts. Please call again later. Goodbye."
say en en-gb lobby "Please wait. The leader will let you in shortly."
say en en-gb admitted "You are now in the meeting. Star 6 mutes your microphone, star 9 raises your hand."
say en en-gb denied "The leader has not let you in. Goodbye."
say en en-gb timeout "Nobody let you in. Please try again later."
say en en-gb ended "The meeting has ended. Goodbye."
say en en-gb removed "You have been removed from the meeting. Goodbye."
say en en-gb muted "Your microphone is muted."
say en en-gb unmuted "Your microphone is on."
say en en-gb hand_up "Your hand is raised."
say en en-gb hand_down "Your hand is lowered."
say en en-gb mute_request "The leader asks you to mute your microphone. Press star 6 to do so."
say en en-gb unavailable "The meeting cannot be reached right now. Please try again later."
say en en-gb choose_language "For English, press 2."
