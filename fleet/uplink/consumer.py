"""The gateway WebSocket at /ws/gateway/v1/: protocol v1 (docs/protocol/uplink.md) over Channels.

The consumer only parses frames (protocol.py), calls one service per frame (services.py) and
answers. Acks are sent after `ingest_batch` returns, i.e. after its transaction committed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer
from django.conf import settings
from django.utils import timezone

from fleet.core.timestamps import rfc3339
from fleet.inventory.models import Gateway
from fleet.inventory.presence import tracker

from . import services
from .auth import gateway_from_scope
from .models import Command
from .protocol import (
    CLOSE_PROTOCOL_VIOLATION,
    CLOSE_SUPERSEDED,
    CLOSE_UNAUTHENTICATED,
    HEARTBEAT_INTERVAL_S,
    MAX_BATCH_RECORDS,
    MAX_FRAME_BYTES,
    MAX_INFLIGHT_BATCHES,
    MAX_RECORD_BYTES,
    PROTOCOL_VERSION,
    Batch,
    ErrorCode,
    Heartbeat,
    Hello,
    ProtocolError,
    parse_frame,
    parse_records,
)

logger = logging.getLogger(__name__)


class GatewayConsumer(AsyncWebsocketConsumer):
    gateway: Gateway | None = None
    stream: str | None = None
    group: str | None = None
    # After a (re)connection, commands sent before without a result are sent again.
    _just_connected = True
    # Embedded setup only (in-memory channel layer): how often frames also look for new commands.
    COMMAND_POLL_S = 10.0
    _next_command_poll = 0.0

    async def connect(self) -> None:
        gateway, error = gateway_from_scope(self.scope)
        await self.accept()
        if gateway is None:
            await self._send({"type": "error", "code": error, "message": "Gateway authentication refused."})
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.gateway = gateway
        self.group = services.gateway_group(gateway.pk)
        # Tell an older connection of the same gateway to go away, then take its place.
        await self.channel_layer.group_send(self.group, {"type": "connection.superseded", "channel": self.channel_name})
        await self.channel_layer.group_add(self.group, self.channel_name)
        tracker.seen(gateway.pk)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.gateway is not None:
            await database_sync_to_async(tracker.flush)({self.gateway.pk})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.gateway is None:
            return
        tracker.seen(self.gateway.pk)
        try:
            frame = parse_frame(text_data, expecting_hello=self.stream is None)
            if isinstance(frame, Hello):
                await self._hello(frame)
            elif isinstance(frame, Batch):
                await self._batch(frame)
            else:
                assert isinstance(frame, Heartbeat)
        except ProtocolError as exc:
            logger.warning("Gateway %s: %s (%s)", self.gateway.serial, exc.code, exc.message)
            await self._send(exc.frame())
            if exc.fatal:
                await self.close(code=CLOSE_PROTOCOL_VIOLATION)
                return
        if tracker.flush_due():
            await database_sync_to_async(tracker.flush)()
        if self.stream is not None and self._layer_is_process_local() and time.monotonic() >= self._next_command_poll:
            await self._deliver_open_commands()

    async def _hello(self, hello: Hello) -> None:
        assert self.gateway is not None
        stream = await database_sync_to_async(services.open_stream)(gateway=self.gateway, hello=hello)
        self.stream = stream.stream
        await self._send(
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "gateway": self.gateway.serial,
                "stream": stream.stream,
                "last_seq": stream.last_seq,
                "heartbeat_interval": HEARTBEAT_INTERVAL_S,
                "update_poll_interval": settings.GRIDFLEET_UPDATE_POLL_SECONDS,
                "limits": {
                    "max_frame_bytes": MAX_FRAME_BYTES,
                    "max_batch_records": MAX_BATCH_RECORDS,
                    "max_record_bytes": MAX_RECORD_BYTES,
                    "max_inflight_batches": MAX_INFLIGHT_BATCHES,
                },
                "server_time": rfc3339(timezone.now()),
            }
        )
        await self._deliver_open_commands()

    async def _deliver_open_commands(self) -> None:
        assert self.gateway is not None
        self._next_command_poll = time.monotonic() + self.COMMAND_POLL_S
        for command in await database_sync_to_async(services.commands_to_deliver)(gateway=self.gateway):
            if command.state == Command.State.PENDING or self._just_connected:
                await self._deliver(str(command.pk))
        self._just_connected = False

    def _layer_is_process_local(self) -> bool:
        """The in-memory layer (embedded default) cannot carry a command created in another process
        (a shell, a worker): there the consumer also looks for pending commands now and then."""
        return isinstance(self.channel_layer, InMemoryChannelLayer)

    async def _batch(self, batch: Batch) -> None:
        assert self.gateway is not None and self.stream is not None
        parsed = parse_records(batch.records, now=timezone.now())
        for rejection in parsed.rejected:
            logger.warning(
                "Gateway %s rejected record seq=%s: %s %s",
                self.gateway.serial,
                rejection.seq,
                rejection.code,
                rejection.message,
            )
        try:
            result = await database_sync_to_async(services.ingest_batch)(
                gateway=self.gateway, stream=self.stream, parsed=parsed
            )
        except Exception:
            # Nothing of the batch was committed; without an ack the agent keeps and resends it.
            logger.exception("Gateway %s: batch %s could not be stored", self.gateway.serial, batch.batch)
            raise ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                "The batch could not be stored; nothing was kept. Resend it.",
                batch=batch.batch,
            ) from None
        await self._send(result.ack(batch.batch))

    async def _deliver(self, command_id: str) -> None:
        command = await database_sync_to_async(services.mark_command_sent)(command_id=command_id)
        if command is not None:
            await self._send(services.command_frame(command))

    async def command_deliver(self, event: dict[str, Any]) -> None:
        # Commands wait for the hello: before it, the agent is not ready to answer them.
        if self.stream is not None:
            await self._deliver(event["command_id"])

    async def connection_superseded(self, event: dict[str, Any]) -> None:
        if event["channel"] != self.channel_name:
            await self.close(code=CLOSE_SUPERSEDED)

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":")))
