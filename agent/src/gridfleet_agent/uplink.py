"""The uplink WebSocket client (docs/protocol/uplink.md, v1).

One connection to ``/ws/gateway/v1/``: ``hello`` -> ``welcome`` (the server's committed position,
whose records are deleted from the queue at once), then queued records in ``seq`` order as
``batch`` frames, at most ``max_inflight_batches`` unacknowledged; each ``ack`` deletes every
record up to its ``last_seq``. Nothing is deleted before the server says it committed it, so a
dropped link costs a resend, never a record; the server deduplicates by (stream, seq).

Any failure closes the connection and reconnects with exponential backoff and full jitter; the
next ``welcome`` says where to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from gridfleet_agent import __version__
from gridfleet_agent.backoff import Backoff
from gridfleet_agent.config import UplinkSection
from gridfleet_agent.errors import AgentError
from gridfleet_agent.queue import Outbox, Record

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
AUTH_REFUSED_CLOSE_CODES = frozenset({4401, 4403})
AUTH_REFUSED_HTTP_STATUSES = frozenset({401, 403})
WELCOME_TIMEOUT = 30.0


class UplinkError(AgentError):
    """The server broke the protocol or refused the session; the connection is dropped and retried."""


class AuthRefused(UplinkError):
    """The server refused the handshake's bearer token."""


@dataclass
class Limits:
    max_frame_bytes: int = 1_048_576
    max_batch_records: int = 500
    max_inflight_batches: int = 4


TokenProvider = Callable[[], Awaitable[str]]
CommandHandler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
WelcomeHandler = Callable[[dict[str, Any]], Awaitable[None]]


def websocket_url(server_url: str) -> str:
    base = server_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/gateway/v1/"


class Uplink:
    def __init__(
        self,
        *,
        server_url: str,
        outbox: Outbox,
        token: TokenProvider,
        invalidate_token: Callable[[], None],
        on_command: CommandHandler,
        on_welcome: WelcomeHandler | None = None,
        settings: UplinkSection | None = None,
        ssl_context: ssl.SSLContext | None = None,
        compression: bool = True,
    ) -> None:
        self.url = websocket_url(server_url)
        self.outbox = outbox
        self._token = token
        self._invalidate_token = invalidate_token
        self._on_command = on_command
        self._on_welcome = on_welcome
        self.settings = settings or UplinkSection()
        self._ssl = ssl_context if self.url.startswith("wss://") else None
        self._compression = "deflate" if compression else None
        self._backoff = Backoff(base=self.settings.reconnect_min_delay, cap=self.settings.reconnect_max_delay)
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.online = asyncio.Event()
        self.state = "disconnected"
        self.last_error = ""
        self.connected_since: float | None = None
        self.connections = 0

    def wake(self) -> None:
        """Tell the sender that records were queued (it also looks by itself every ``idle_poll``)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Stay connected until cancelled."""
        fresh_token_tried = False
        while True:
            sessions_before = self.connections
            try:
                await self._connect_once()
            except AuthRefused as e:
                self._invalidate_token()
                self.last_error = str(e)
                if not fresh_token_tried:  # the token was probably stale: one immediate retry
                    fresh_token_tried = True
                    self._disconnected()
                    continue
            except (OSError, TimeoutError, WebSocketException, UplinkError, ValueError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
            except Exception as e:  # e.g. the identity layer failing to get a token; keep retrying
                logger.exception("uplink failed unexpectedly")
                self.last_error = f"{type(e).__name__}: {e}"
            self._disconnected()
            if self.connections > sessions_before:
                fresh_token_tried = False
            delay = self._backoff.next_delay()
            logger.info("uplink down (%s); reconnecting in %.1f s", self.last_error, delay)
            await asyncio.sleep(delay)

    def _disconnected(self) -> None:
        self.online.clear()
        self.state = "disconnected"
        self.connected_since = None

    async def _connect_once(self) -> None:
        self.state = "connecting"
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                user_agent_header=f"gridfleet-agent/{__version__}",
                ssl=self._ssl,
                compression=self._compression,
                open_timeout=WELCOME_TIMEOUT,
                max_size=16 * 1024 * 1024,
            )
        except InvalidStatus as e:
            if e.response.status_code in AUTH_REFUSED_HTTP_STATUSES:
                raise AuthRefused(f"handshake refused with HTTP {e.response.status_code}") from e
            raise
        async with ws:
            try:
                await self._session(ws)
            except ConnectionClosed as e:
                if e.rcvd is not None and e.rcvd.code in AUTH_REFUSED_CLOSE_CODES:
                    raise AuthRefused(f"closed by the server with {e.rcvd.code} {e.rcvd.reason}") from e
                raise

    async def _session(self, ws: ClientConnection) -> None:
        depth = self.outbox.depth()
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "protocol": PROTOCOL_VERSION,
                    "agent_version": __version__,
                    "stream": self.outbox.stream,
                    "last_acked_seq": depth.last_acked_seq,
                }
            )
        )
        welcome = json.loads(await asyncio.wait_for(ws.recv(), WELCOME_TIMEOUT))
        if welcome.get("type") == "error":
            raise UplinkError(f"hello refused: {welcome.get('code')}: {welcome.get('message')}")
        if welcome.get("type") != "welcome" or not isinstance(welcome.get("last_seq"), int):
            raise UplinkError(f"expected welcome, got {str(welcome)[:200]}")
        self.outbox.ack_through(welcome["last_seq"])
        limits = Limits(**{k: v for k, v in welcome.get("limits", {}).items() if k in Limits.__dataclass_fields__})
        heartbeat = float(welcome.get("heartbeat_interval") or self.settings.heartbeat_interval)
        self.state = "online"
        self.connected_since = time.time()
        self.connections += 1
        self.last_error = ""
        self._backoff.reset()
        self.online.set()
        logger.info("uplink online (stream %s, server committed through %s)", self.outbox.stream, welcome["last_seq"])
        if self._on_welcome is not None:
            await self._on_welcome(welcome)

        inflight: dict[str, int] = {}
        sender = asyncio.create_task(self._send_loop(ws, limits, heartbeat, inflight, welcome["last_seq"]))
        receiver = asyncio.create_task(self._receive_loop(ws, inflight))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise what ended the session
        finally:
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)

    async def _send_loop(
        self, ws: ClientConnection, limits: Limits, heartbeat: float, inflight: dict[str, int], sent_through: int
    ) -> None:
        last_sent = time.monotonic()
        batch_number = 0
        while True:
            if len(inflight) < limits.max_inflight_batches:
                records = self.outbox.pending(limit=limits.max_batch_records, after_seq=sent_through)
                if records:
                    batch_number += 1
                    batch_id = f"b-{self.connections}-{batch_number}"
                    frame, last_seq = batch_frame(batch_id, records, limits.max_frame_bytes)
                    inflight[batch_id] = last_seq
                    await ws.send(frame)
                    sent_through, last_sent = last_seq, time.monotonic()
                    continue
            if time.monotonic() - last_sent >= heartbeat:
                await ws.send('{"type":"heartbeat"}')
                last_sent = time.monotonic()
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.idle_poll)

    async def _receive_loop(self, ws: ClientConnection, inflight: dict[str, int]) -> None:
        async for raw in ws:
            try:
                message = json.loads(raw)
                kind = message["type"]
            except (ValueError, KeyError, TypeError) as e:
                raise UplinkError(f"server sent an unreadable frame: {str(raw)[:200]}") from e
            if kind == "ack":
                self.outbox.ack_through(int(message["last_seq"]))
                inflight.pop(str(message.get("batch")), None)
                for rejected in message.get("rejected", []):
                    logger.warning(
                        "server rejected record %s: %s %s",
                        rejected.get("seq"),
                        rejected.get("code"),
                        rejected.get("message"),
                    )
                self.wake()
            elif kind == "command":
                task = asyncio.create_task(self._on_command(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif kind == "error":
                logger.warning("server error frame: %s %s", message.get("code"), message.get("message"))
                if message.get("code") == "internal_error":
                    # The batch was not committed; reconnecting makes the server tell where to resume.
                    raise UplinkError(f"server could not commit batch {message.get('batch')}")
            else:
                logger.info("ignoring server frame of type %r", kind)


def batch_frame(batch_id: str, records: list[Record], max_frame_bytes: int) -> tuple[str, int]:
    """Serialize as many records as fit in one frame (at least one); returns (frame, last seq)."""
    head = f'{{"type":"batch","batch":"{batch_id}","records":['
    parts: list[str] = []
    size = len(head) + 2
    for record in records:
        part = json.dumps(record.as_message(), separators=(",", ":"))
        if parts and size + len(part.encode()) + 1 > max_frame_bytes:
            break
        parts.append(part)
        size += len(part.encode()) + 1
    return head + ",".join(parts) + "]}", records[len(parts) - 1].seq
