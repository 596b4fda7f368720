"""Tunnel frames: one binary WebSocket message each, a 5-byte header and a payload.

```
byte 0      op (Op)
bytes 1..4  stream id, unsigned 32-bit big-endian (1.. chosen by the technician's end)
bytes 5..   payload (op-specific)
```
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct("!BI")
COUNT = struct.Struct("!I")
SIZE = struct.Struct("!HH")

WINDOW_BYTES = 256 * 1024
"""Per stream and direction: DATA bytes a sender may have unacknowledged. Bounds every buffer."""
MAX_DATA_BYTES = 32 * 1024
"""Largest DATA payload."""
MAX_STREAMS = 8
"""Tool connections open at once in one session (engineering tools open several)."""
MAX_REASON_BYTES = 500


class Op(IntEnum):
    OPEN = 1  # technician -> gateway: dial the session's target for this stream (terminal: payload SIZE)
    OPENED = 2  # gateway -> technician: the target answered
    DATA = 3  # either way: bytes of the stream
    ACK = 4  # either way: payload COUNT, DATA bytes delivered to the destination (returns credit)
    CLOSE = 5  # either way: the stream ended; payload an optional UTF-8 reason
    RESIZE = 6  # technician -> gateway: terminal size, payload SIZE (columns, rows)


class FrameError(ValueError):
    """A message that is not a tunnel frame."""


@dataclass(frozen=True, slots=True)
class Frame:
    op: Op
    stream: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return HEADER.pack(self.op, self.stream) + self.payload

    @property
    def count(self) -> int:
        """ACK's byte count."""
        return int(COUNT.unpack(self.payload)[0])

    @property
    def size(self) -> tuple[int, int]:
        """OPEN's (terminal) or RESIZE's (columns, rows)."""
        columns, rows = SIZE.unpack(self.payload)
        return int(columns), int(rows)

    @property
    def reason(self) -> str:
        return self.payload.decode("utf-8", "replace")


def decode(message: bytes) -> Frame:
    if len(message) < HEADER.size:
        raise FrameError(f"a frame has at least {HEADER.size} bytes, got {len(message)}")
    op_value, stream = HEADER.unpack_from(message)
    try:
        op = Op(op_value)
    except ValueError:
        raise FrameError(f"unknown op {op_value}") from None
    payload = message[HEADER.size :]
    if stream == 0:
        raise FrameError("stream 0 is not used")
    if op == Op.DATA and not 0 < len(payload) <= MAX_DATA_BYTES:
        raise FrameError(f"DATA carries 1..{MAX_DATA_BYTES} bytes, got {len(payload)}")
    if op == Op.ACK and len(payload) != COUNT.size:
        raise FrameError("ACK carries a 4-byte count")
    if op == Op.RESIZE and len(payload) != SIZE.size:
        raise FrameError("RESIZE carries columns and rows (2 x 16 bits)")
    if op == Op.CLOSE and len(payload) > MAX_REASON_BYTES:
        raise FrameError(f"a CLOSE reason is at most {MAX_REASON_BYTES} bytes")
    return Frame(op, stream, payload)


def data(stream: int, payload: bytes) -> Frame:
    return Frame(Op.DATA, stream, payload)


def ack(stream: int, count: int) -> Frame:
    return Frame(Op.ACK, stream, COUNT.pack(count))


def close(stream: int, reason: str = "") -> Frame:
    return Frame(Op.CLOSE, stream, reason.encode()[:MAX_REASON_BYTES])


def sized(op: Op, stream: int, columns: int, rows: int) -> Frame:
    return Frame(op, stream, SIZE.pack(max(1, min(columns, 65535)), max(1, min(rows, 65535))))
