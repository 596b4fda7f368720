"""Several byte streams over one tunnel WebSocket, with credit-based flow control.

Each stream joins a local ``Endpoint`` (a TCP connection, a serial port, a terminal) to the
peer's. A sender may have at most ``WINDOW_BYTES`` of DATA per stream unacknowledged; the
receiver acknowledges bytes only once its endpoint took them (``write`` returned after the
socket drained). A stalled reader therefore stops its writer after one window, all the way back
to the writer's TCP socket, and no buffer on the way (this process, the server, the peer) holds
more than a window per stream. One slow stream never blocks the others: each has its own queue
and writer task, fed without waiting by the single reader of the WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from gridfleet_tunnel import frames
from gridfleet_tunnel.frames import MAX_DATA_BYTES, MAX_STREAMS, WINDOW_BYTES, Frame, Op

logger = logging.getLogger(__name__)

OPEN_TIMEOUT = 30.0


class StreamRefused(Exception):
    """The peer (or this end) could not open the stream; the message says why."""


class FlowControlError(Exception):
    """The peer sent more than its window: it does not follow the protocol, the tunnel is closed."""


class Endpoint(Protocol):
    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes as soon as some are available; ``b""`` at the end."""
        ...

    async def write(self, data: bytes) -> None:
        """Return once the destination took ``data`` (e.g. the socket drained)."""
        ...

    async def close(self) -> None: ...

    def resize(self, columns: int, rows: int) -> None:
        """Terminal size changed (ignored by byte streams)."""
        ...


class StreamEndpoint:
    """An endpoint over an asyncio stream pair (a TCP connection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self, limit: int) -> bytes:
        return await self.reader.read(limit)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self.writer.wait_closed()

    def resize(self, columns: int, rows: int) -> None:
        pass


@dataclass
class StreamStats:
    stream: int
    opened_at: float = field(default_factory=time.time)
    bytes_sent: int = 0
    """Read from this end's endpoint and sent to the peer."""
    bytes_received: int = 0
    """Received from the peer and written to this end's endpoint."""
    reason: str = ""


Send = Callable[[bytes], Awaitable[None]]
Opener = Callable[[Frame], Awaitable[Endpoint]]
"""The gateway's end: make the endpoint an OPEN asks for; raises StreamRefused (or OSError)."""
StreamCallback = Callable[[StreamStats], None]


class _Stream:
    def __init__(self, mux: Mux, stream: int, endpoint: Endpoint | None) -> None:
        self.mux = mux
        self.id = stream
        self.endpoint = endpoint
        self.stats = StreamStats(stream)
        self.credit = WINDOW_BYTES
        self.credit_returned = asyncio.Event()
        self.inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.buffered = 0
        self.remote_closed = False
        self.local_closed = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._pump_out()), asyncio.create_task(self._pump_in())]

    def received(self, payload: bytes) -> None:
        if self.remote_closed:
            return
        self.buffered += len(payload)
        if self.buffered > WINDOW_BYTES:
            raise FlowControlError(f"stream {self.id}: peer sent {self.buffered} bytes beyond its window")
        self.inbound.put_nowait(payload)

    def acknowledged(self, count: int) -> None:
        self.credit = min(WINDOW_BYTES, self.credit + count)
        self.credit_returned.set()

    def peer_closed(self, reason: str) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self.stats.reason = self.stats.reason or reason or "closed by the other end"
            self.inbound.put_nowait(None)

    async def _pump_out(self) -> None:
        """Endpoint -> peer, never more than the credit the peer returned."""
        assert self.endpoint is not None
        reason = "closed"
        try:
            while True:
                while self.credit <= 0:
                    self.credit_returned.clear()
                    await self.credit_returned.wait()
                chunk = await self.endpoint.read(min(MAX_DATA_BYTES, self.credit))
                if not chunk:
                    break
                self.credit -= len(chunk)
                self.stats.bytes_sent += len(chunk)
                await self.mux.send_frame(frames.data(self.id, chunk))
        except Exception as e:  # the endpoint failed, or the tunnel did: either way this stream ends
            reason = f"{type(e).__name__}: {e}"
        if not self.remote_closed:
            self.stats.reason = self.stats.reason or reason
            await self._send_close(reason)
            self.inbound.put_nowait(None)

    async def _pump_in(self) -> None:
        """Peer -> endpoint; each chunk is acknowledged once the endpoint took it."""
        assert self.endpoint is not None
        try:
            while (chunk := await self.inbound.get()) is not None:
                await self.endpoint.write(chunk)
                self.buffered -= len(chunk)
                self.stats.bytes_received += len(chunk)
                if not self.local_closed:
                    await self.mux.send_frame(frames.ack(self.id, len(chunk)))
        except OSError as e:
            self.stats.reason = self.stats.reason or f"{type(e).__name__}: {e}"
            await self._send_close(self.stats.reason)
        finally:
            await self.endpoint.close()
            for task in self.tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            self.mux._forget(self)

    async def _send_close(self, reason: str) -> None:
        if not self.local_closed:
            self.local_closed = True
            with contextlib.suppress(Exception):
                await self.mux.send_frame(frames.close(self.id, reason))

    async def abort(self, reason: str) -> None:
        self.stats.reason = self.stats.reason or reason
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.endpoint is not None:
            with contextlib.suppress(Exception):
                await self.endpoint.close()
        self.mux._forget(self)


class Mux:
    """One side of a tunnel. ``feed`` every binary message received; ``send`` carries frames out."""

    def __init__(
        self,
        send: Send,
        *,
        opener: Opener | None = None,
        max_streams: int = MAX_STREAMS,
        on_stream_closed: StreamCallback | None = None,
    ) -> None:
        self._send = send
        self._opener = opener
        self.max_streams = max_streams
        self._streams: dict[int, _Stream] = {}
        self._opening: set[asyncio.Task[None]] = set()
        self._next_id = 1
        self._on_stream_closed = on_stream_closed
        self.last_activity = time.monotonic()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.streams_opened = 0

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def send_frame(self, frame: Frame) -> None:
        if frame.op == Op.DATA:
            self.bytes_sent += len(frame.payload)
            self.last_activity = time.monotonic()
        await self._send(frame.encode())

    # -- the technician's end -------------------------------------------------------------------
    async def open(self, endpoint: Endpoint, *, size: tuple[int, int] | None = None) -> StreamStats:
        """Open a stream to the session's target for ``endpoint``; raises StreamRefused."""
        if len(self._streams) >= self.max_streams:
            raise StreamRefused(f"{self.max_streams} connections are open; that is the limit of one session")
        stream = _Stream(self, self._next_id, endpoint)
        self._next_id += 1
        self._streams[stream.id] = stream
        opening = frames.sized(Op.OPEN, stream.id, *size) if size else Frame(Op.OPEN, stream.id)
        await self.send_frame(opening)
        try:
            await asyncio.wait_for(stream.opened, OPEN_TIMEOUT)
        except (StreamRefused, TimeoutError) as e:
            self._streams.pop(stream.id, None)
            raise StreamRefused(str(e) or "the gateway did not answer") from None
        self.streams_opened += 1
        stream.start()
        return stream.stats

    async def resize(self, stream_id: int, columns: int, rows: int) -> None:
        await self.send_frame(frames.sized(Op.RESIZE, stream_id, columns, rows))

    # -- both ends --------------------------------------------------------------------------------
    async def feed(self, message: bytes) -> None:
        """Handle one frame from the peer; never waits on an endpoint. Raises FrameError/FlowControlError."""
        frame = frames.decode(message)
        if frame.op == Op.OPEN:
            await self._peer_opens(frame)
            return
        stream = self._streams.get(frame.stream)
        if frame.op == Op.DATA:
            self.last_activity = time.monotonic()
            self.bytes_received += len(frame.payload)
        if stream is not None:
            self._handle(stream, frame)

    @staticmethod
    def _handle(stream: _Stream, frame: Frame) -> None:
        if frame.op == Op.DATA:
            stream.received(frame.payload)
        elif frame.op == Op.ACK:
            stream.acknowledged(frame.count)
        elif frame.op == Op.CLOSE:
            if stream.opened.done():
                stream.peer_closed(frame.reason)
            elif stream.endpoint is not None:  # our OPEN was refused
                stream.opened.set_exception(StreamRefused(frame.reason or "refused by the gateway"))
            else:  # the peer gave up while we were still dialling
                stream.remote_closed = True
        elif frame.op == Op.OPENED:
            if not stream.opened.done():
                stream.opened.set_result(None)
        elif frame.op == Op.RESIZE and stream.endpoint is not None:
            stream.endpoint.resize(*frame.size)

    async def _peer_opens(self, frame: Frame) -> None:
        if self._opener is None:
            await self.send_frame(frames.close(frame.stream, "this end does not accept streams"))
        elif frame.stream in self._streams:
            await self.send_frame(frames.close(frame.stream, "stream id already in use"))
        elif len(self._streams) >= self.max_streams:
            await self.send_frame(
                frames.close(frame.stream, f"{self.max_streams} connections are open; that is this session's limit")
            )
        else:
            stream = _Stream(self, frame.stream, None)
            self._streams[frame.stream] = stream  # reserved while the target is dialled
            task = asyncio.create_task(self._dial(stream, frame))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _dial(self, stream: _Stream, frame: Frame) -> None:
        assert self._opener is not None
        try:
            stream.endpoint = await self._opener(frame)
        except (StreamRefused, OSError, TimeoutError, ValueError) as e:
            self._streams.pop(stream.id, None)
            await self.send_frame(frames.close(stream.id, str(e) or type(e).__name__))
            return
        if stream.remote_closed:
            self._streams.pop(stream.id, None)
            await stream.endpoint.close()
            return
        self.streams_opened += 1
        await self.send_frame(Frame(Op.OPENED, stream.id))
        stream.opened.set_result(None)
        stream.start()

    def _forget(self, stream: _Stream) -> None:
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]
            if self._on_stream_closed is not None:
                self._on_stream_closed(stream.stats)

    async def close(self, reason: str = "tunnel closed") -> None:
        """End every stream and close their endpoints (the WebSocket is the caller's)."""
        for task in list(self._opening):
            task.cancel()
        await asyncio.gather(*self._opening, return_exceptions=True)
        for stream in list(self._streams.values()):
            if not stream.opened.done():
                stream.opened.set_exception(StreamRefused(reason))
                stream.opened.exception()  # retrieved: nobody may be waiting any more
            await stream.abort(reason)
