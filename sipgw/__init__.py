"""Kreis dial-in gateway (`kreis dial-in`): phone callers join rooms over SIP.

A pjsua2 endpoint answers calls; each call enters a room PIN by DTMF, waits in the
lobby like any guest, and is then bridged both ways to the room as a client of the
Kreis server (signalling over WebSocket, media via aiortc). See ARCHITECTURE.md,
"Dial-in", and docs/protocol.md, "Dial-in gateway".

One pjsua2 process holds 4 calls. With `[sip] processes > 1`, gateways on other
machines, SIP over TLS or a trunk registration, `kreis dial-in` supervises Debian's
Kamailio as the SIP edge (`sipgw.kamailio`: config and dispatcher list written from
`[sip]`, call-load balancing, OPTIONS probes, record-routing, `allow_from`; it alone
does TLS, with OpenSSL 3, and registers, with `uac`; TLS calls are marked so the
gateway insists on SRTP) and that many backend processes on loopback UDP
(`sipgw.supervisor`); pjsip never does TLS. A backend learns the caller's address from
the edge's `X-Kreis-Source` header (`sipgw.phone.trusted_source`).
"""
