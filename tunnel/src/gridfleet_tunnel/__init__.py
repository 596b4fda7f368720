"""Remote maintenance tunnels (docs/protocol/tunnel.md): frames and the flow-controlled multiplexer.

Both ends of a tunnel use this package: the gateway agent (which dials the field device, the
serial port or the terminal) and the operator CLI (which listens on a local port for the
technician's tool). The server in between only relays frames and checks their accounting.
"""

from gridfleet_tunnel.frames import MAX_DATA_BYTES, MAX_STREAMS, WINDOW_BYTES, Frame, FrameError, Op, decode
from gridfleet_tunnel.mux import Endpoint, FlowControlError, Mux, StreamEndpoint, StreamRefused, StreamStats

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_STREAMS",
    "WINDOW_BYTES",
    "Endpoint",
    "FlowControlError",
    "Frame",
    "FrameError",
    "Mux",
    "Op",
    "StreamEndpoint",
    "StreamRefused",
    "StreamStats",
    "decode",
]
