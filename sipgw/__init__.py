"""Kreis dial-in gateway (`kreis dial-in`): phone callers join rooms over SIP.

A pjsua2 endpoint answers calls; each call enters a room PIN by DTMF, waits in the
lobby like any guest, and is then bridged both ways to the room as a client of the
Kreis server (signalling over WebSocket, media via aiortc). See ARCHITECTURE.md,
"Dial-in", and docs/protocol.md, "Dial-in gateway".
"""
