"""Errors of the dial-in gateway.

A small hierarchy: everything the gateway raises on purpose is a `GatewayError`. The
ones an operator sees carry a stable `code` and a sentence in German and English.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of all gateway errors."""

    code = "gateway"
    message_de = "Das Telefon-Gateway hat einen Fehler."
    message_en = "The telephone gateway failed."

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.message_en)
        self.detail = detail


class ConfigError(GatewayError):
    """The configuration file is missing, unreadable or has a bad value (named in detail)."""

    code = "bad_config"
    message_de = "Die Konfiguration des Telefon-Gateways ist fehlerhaft."
    message_en = "The telephone gateway's configuration has an error."


class SipStartError(GatewayError):
    """pjsip could not start (port in use, bad certificate, ...)."""

    code = "sip_start"
    message_de = "Der SIP-Dienst des Gateways konnte nicht starten."
    message_en = "The gateway's SIP service could not start."


class LinkError(GatewayError):
    """The connection to the Kreis server failed or was refused."""

    code = "server_unreachable"
    message_de = "Der Kreis-Server ist nicht erreichbar."
    message_en = "The Kreis server cannot be reached."


class PromptError(GatewayError):
    """A prompt WAV file is missing or not 16 kHz mono 16-bit PCM."""

    code = "bad_prompt"
    message_de = "Eine Ansage des Telefon-Gateways fehlt oder ist fehlerhaft."
    message_en = "A prompt of the telephone gateway is missing or broken."
