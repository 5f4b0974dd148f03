"""`kreis console`: the Textual moderation console for group leaders.

It is a client of the server over the documented signalling protocol (docs/protocol.md)
and imports nothing from the server: only `app.protocol` and `app.client`.
"""
