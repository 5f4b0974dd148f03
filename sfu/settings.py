"""Configuration of the media layer: where it binds, what it advertises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MediaSettings:
    """How the SFU reaches clients. Loaded by app/ from the `[media]` TOML table."""

    bind_address: str = "127.0.0.1"
    """Local address the media UDP sockets bind to (one per peer connection)."""
    advertised_address: str = "127.0.0.1"
    """Address written into SDP candidates (the public one behind a 1:1 NAT)."""
    port_min: int = 40000
    """Lowest UDP port for media."""
    port_max: int = 40999
    """Highest UDP port for media; each peer connection takes one port."""
    ice_servers: tuple[Any, ...] = ()
    """STUN/TURN URLs (or aiortc RTCIceServer objects) for the server side; normally
    empty. Only host candidates on bind_address are gathered today, so these are
    passed to aiortc's configuration but not used for gathering."""
    test_drop_rate: float = 0.0
    """Test hook: fraction of incoming RTP packets dropped on arrival (0 in production)."""
    test_down_drop_rate: float = 0.0
    """Test hook: fraction of packets to subscribers not sent the first time (but cached,
    so NACKs can repair them); 0 in production."""

    def __post_init__(self) -> None:
        if not 0 < self.port_min <= self.port_max <= 65535:
            raise ValueError("media port range must satisfy 0 < port_min <= port_max <= 65535")
        for rate in (self.test_drop_rate, self.test_down_drop_rate):
            if not 0.0 <= rate < 1.0:
                raise ValueError("test drop rates must be in [0, 1)")
