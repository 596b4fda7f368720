"""The relay's bookkeeping of one session: streams, byte counts, and the flow-control rules. Pure.

Every frame of a session passes the technician's consumer (its own frames from its WebSocket,
the gateway's through the channel layer), so one ledger there sees both directions. It enforces
what keeps the relay's memory bounded: at most MAX_STREAMS streams, and no more than
WINDOW_BYTES of DATA unacknowledged per stream and direction (a peer that ignores its window is
cut off rather than buffered). The ends do the real flow control (gridfleet_tunnel.mux).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gridfleet_tunnel.frames import MAX_STREAMS, WINDOW_BYTES, Frame, Op


class RelayViolation(Exception):
    """A peer broke the tunnel protocol; the session is ended."""


@dataclass
class StreamLedger:
    stream: int
    opened_at: float = field(default_factory=time.time)
    up: int = 0
    down: int = 0
    unacked_up: int = 0
    unacked_down: int = 0
    established: bool = False


@dataclass
class Closed:
    stream: int
    up: int
    down: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"stream": self.stream, "up": self.up, "down": self.down, "reason": self.reason}


@dataclass
class RelayLedger:
    max_streams: int = MAX_STREAMS
    streams: dict[int, StreamLedger] = field(default_factory=dict)
    up: int = 0
    down: int = 0
    pending_up: int = 0
    pending_down: int = 0
    opened: list[StreamLedger] = field(default_factory=list)
    closed: list[Closed] = field(default_factory=list)
    last_activity: float = field(default_factory=time.monotonic)

    def from_technician(self, frame: Frame) -> str | None:
        """Account a frame going to the gateway. Returns a reason to refuse an OPEN (not forwarded)."""
        ledger = self.streams.get(frame.stream)
        if frame.op == Op.OPEN:
            if ledger is not None:
                raise RelayViolation(f"stream {frame.stream} is already open")
            if len(self.streams) >= self.max_streams:
                return f"{self.max_streams} connections are open; that is this session's limit"
            self.streams[frame.stream] = StreamLedger(frame.stream)
        elif frame.op == Op.DATA:
            if ledger is None:
                return None  # a stream that just ended; the gateway drops it too
            ledger.up += len(frame.payload)
            ledger.unacked_up += len(frame.payload)
            self.up += len(frame.payload)
            self.pending_up += len(frame.payload)
            self.last_activity = time.monotonic()
            if ledger.unacked_up > WINDOW_BYTES:
                raise RelayViolation(f"the technician's end sent beyond its window on stream {frame.stream}")
        elif frame.op == Op.ACK and ledger is not None:
            ledger.unacked_down = max(0, ledger.unacked_down - frame.count)
        elif frame.op == Op.CLOSE and ledger is not None:
            self._close(ledger, frame.reason or "closed by the technician's tool")
        elif frame.op == Op.OPENED:
            raise RelayViolation("only the gateway answers OPEN")
        return None

    def from_gateway(self, frame: Frame) -> None:
        """Account a frame going to the technician."""
        ledger = self.streams.get(frame.stream)
        if frame.op in (Op.OPEN, Op.RESIZE):
            raise RelayViolation("the gateway does not open streams")
        if ledger is None:
            return
        if frame.op == Op.OPENED:
            ledger.established = True
            self.opened.append(ledger)
        elif frame.op == Op.DATA:
            ledger.down += len(frame.payload)
            ledger.unacked_down += len(frame.payload)
            self.down += len(frame.payload)
            self.pending_down += len(frame.payload)
            self.last_activity = time.monotonic()
            if ledger.unacked_down > WINDOW_BYTES:
                raise RelayViolation(f"the gateway sent beyond its window on stream {frame.stream}")
        elif frame.op == Op.ACK:
            ledger.unacked_up = max(0, ledger.unacked_up - frame.count)
        elif frame.op == Op.CLOSE:
            self._close(ledger, frame.reason or "closed by the target")

    def _close(self, ledger: StreamLedger, reason: str) -> None:
        del self.streams[ledger.stream]
        if ledger.established:
            self.closed.append(Closed(ledger.stream, ledger.up, ledger.down, reason))

    def close_all(self, reason: str) -> None:
        for ledger in list(self.streams.values()):
            self._close(ledger, reason)

    def take(self) -> tuple[int, int, list[StreamLedger], list[Closed]]:
        """What happened since the last call: bytes up, bytes down, connections opened and closed."""
        taken = (self.pending_up, self.pending_down, self.opened, self.closed)
        self.pending_up = self.pending_down = 0
        self.opened, self.closed = [], []
        return taken
