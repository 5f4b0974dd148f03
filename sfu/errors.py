"""Errors the SFU raises, each with a stable code and a sentence for a leader."""

from __future__ import annotations


class SfuError(Exception):
    """Base of every error the SFU raises to the server."""

    code = "sfu_error"
    message_en = "The media server had a problem."
    message_de = "Der Medienserver hatte ein Problem."


class BadSdp(SfuError):
    """A client sent a session description the SFU cannot use."""

    code = "bad_sdp"
    message_en = "The browser sent a media description the server cannot use."
    message_de = "Der Browser hat eine Medienbeschreibung geschickt, die der Server nicht versteht."


class UnknownParticipant(SfuError):
    """The server referred to a room or participant the router does not know."""

    code = "unknown_participant"
    message_en = "This participant is not connected to the media server."
    message_de = "Diese Person ist nicht mit dem Medienserver verbunden."


class PortRangeExhausted(SfuError):
    """Every UDP port of the configured media range is in use."""

    code = "no_media_port"
    message_en = "The media server has no free network port; try again later."
    message_de = "Der Medienserver hat keinen freien Netzwerkport; bitte später erneut versuchen."

    def __init__(self, port_min: int, port_max: int) -> None:
        super().__init__(f"no free UDP port in {port_min}-{port_max}")
        self.port_min = port_min
        self.port_max = port_max
