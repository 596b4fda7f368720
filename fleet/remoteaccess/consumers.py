"""The two WebSocket ends of a maintenance session, paired through the channel layer.

- `GatewayTunnelConsumer` at /ws/gateway/v1/tunnel/<session>/: the gateway dials it after
  `open_tunnel` (gateway identity, like the uplink).
- `TechnicianTunnelConsumer` at /ws/remote/v1/sessions/<session>/: the operator CLI (API token) or
  the browser terminal (login session, Origin checked) of the technician who opened the session.

Each end joins its own group (`services.session_group`) and sends the other end's frames to the
other group, so the two may live on different ASGI workers (Redis channel layer). Frames are
relayed as they are; flow control is end to end (docs/protocol/tunnel.md), and the technician's
consumer, which sees every frame, enforces its limits (relay.py), counts bytes, records
connections and, for a terminal, writes the asciicast recording. Ending a session anywhere
(`services.end_session`) sends `session.end` to both groups and both sockets close at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from gridfleet_tunnel import frames
from gridfleet_tunnel.frames import MAX_STREAMS, FrameError, Op

from fleet.core.errors import DomainError
from fleet.uplink.auth import gateway_from_scope

from . import selectors, services
from .models import MaintenanceSession
from .recording import AsciicastRecorder
from .relay import RelayLedger, RelayViolation

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_REFUSED = 4403
CLOSE_PROTOCOL = 4400
FLUSH_EVERY_S = 2.0
WATCH_EVERY_S = 0.5


class _TunnelEnd(AsyncWebsocketConsumer):
    end = ""
    session_id: str | None = None
    ended = False

    @property
    def peer_group(self) -> str:
        return services.session_group(self.session_id, "technician" if self.end == "gateway" else "gateway")

    async def refuse(self, reason: str, code: int) -> None:
        await self.send_control({"type": "end", "state": "refused", "reason": reason})
        await self.close(code=code)

    async def send_control(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message))

    async def join(self) -> None:
        await self.channel_layer.group_add(services.session_group(self.session_id, self.end), self.channel_name)

    async def leave(self) -> None:
        if self.session_id is not None:
            await self.channel_layer.group_discard(services.session_group(self.session_id, self.end), self.channel_name)

    async def forward(self, frame: bytes) -> None:
        await self.channel_layer.group_send(self.peer_group, {"type": "tunnel.frame", "frame": frame})

    async def session_end(self, event: dict[str, Any]) -> None:
        self.ended = True
        await self.send_control({"type": "end", "state": event["state"], "reason": event["reason"]})
        await self.close(code=1000)


class GatewayTunnelConsumer(_TunnelEnd):
    end = "gateway"

    async def connect(self) -> None:
        gateway, error = gateway_from_scope(self.scope)
        await self.accept()
        if gateway is None:
            await self.refuse(error, CLOSE_UNAUTHENTICATED)
            return
        try:
            session = await database_sync_to_async(services.gateway_connected)(
                session_id=self.scope["url_route"]["kwargs"]["session_id"], gateway=gateway
            )
        except DomainError as exc:
            await self.refuse(exc.message, CLOSE_REFUSED)
            return
        self.session_id = str(session.pk)
        await self.join()
        await self.channel_layer.group_send(self.peer_group, {"type": "gateway.ready"})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session_id is not None and bytes_data is not None:
            await self.forward(bytes_data)

    async def tunnel_frame(self, event: dict[str, Any]) -> None:
        await self.send(bytes_data=event["frame"])

    async def disconnect(self, code: int) -> None:
        await self.leave()
        if self.session_id is not None and not self.ended:
            await database_sync_to_async(services.end_session)(
                session_id=self.session_id,
                state=MaintenanceSession.State.CLOSED,
                reason=f"the gateway's end disconnected ({code})",
            )


class TechnicianTunnelConsumer(_TunnelEnd):
    end = "technician"
    gateway_up = False
    session: MaintenanceSession
    ledger: RelayLedger
    recorder: AsciicastRecorder | None = None
    watchdog: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.refuse("Log in, or send 'Authorization: Token <key>'.", CLOSE_UNAUTHENTICATED)
            return
        try:
            session = await database_sync_to_async(services.technician_joins)(
                session_id=self.scope["url_route"]["kwargs"]["session_id"], user=user
            )
        except (DomainError, PermissionDenied) as exc:
            await self.refuse(str(getattr(exc, "message", exc)), CLOSE_REFUSED)
            return
        self.session = session
        self.session_id = str(session.pk)
        self.ledger = RelayLedger(max_streams=MAX_STREAMS if session.kind == MaintenanceSession.Kind.TCP else 1)
        if session.recording:
            self.recorder = AsciicastRecorder(session.recording, title=f"{session.gateway.serial}: {session.reason}")
        await self.join()
        self.gateway_up = session.state == MaintenanceSession.State.ACTIVE
        await self.send_control(
            {
                "type": "ready" if self.gateway_up else "waiting",
                "session": self.session_id,
                "kind": session.kind,
                "target": session.target_label,
                "expires_at": session.expires_at.isoformat() if session.expires_at else None,
            }
        )
        self.watchdog = asyncio.create_task(self._watch())

    async def gateway_ready(self, event: dict[str, Any]) -> None:
        if not self.gateway_up:
            self.gateway_up = True
            await self.send_control({"type": "ready", "session": self.session_id})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session_id is None or self.ended or bytes_data is None:
            return
        try:
            frame = frames.decode(bytes_data)
            if frame.op == Op.OPEN and not self.gateway_up:
                await self.send(bytes_data=frames.close(frame.stream, "the gateway has not connected yet").encode())
                return
            refusal = self.ledger.from_technician(frame)
        except (FrameError, RelayViolation) as exc:
            await self._violation(f"the technician's end broke the protocol: {exc}")
            return
        if refusal:
            await self.send(bytes_data=frames.close(frame.stream, refusal).encode())
            return
        if self.recorder is not None:
            if frame.op == Op.OPEN and frame.payload:
                self.recorder.start(*frame.size)
            elif frame.op == Op.RESIZE:
                self.recorder.resize(*frame.size)
        await self.forward(bytes_data)

    async def tunnel_frame(self, event: dict[str, Any]) -> None:
        if self.ended:
            return
        message: bytes = event["frame"]
        try:
            frame = frames.decode(message)
            self.ledger.from_gateway(frame)
        except (FrameError, RelayViolation) as exc:
            await self._violation(f"the gateway's end broke the protocol: {exc}")
            return
        if frame.op == Op.DATA and self.recorder is not None:
            self.recorder.output(frame.payload)
        await self.send(bytes_data=message)
        if frame.op in (Op.OPENED, Op.CLOSE):
            await self._flush()

    async def _violation(self, reason: str) -> None:
        logger.warning("Session %s: %s", self.session_id, reason)
        await database_sync_to_async(services.end_session)(
            session_id=self.session_id, state=MaintenanceSession.State.CLOSED, reason=reason
        )

    async def _flush(self) -> None:
        up, down, opened, closed = self.ledger.take()
        if not (up or down or opened or closed):
            return
        await database_sync_to_async(_store_traffic)(self.session_id, up, down, opened, [c.as_dict() for c in closed])

    async def _watch(self) -> None:
        """Expiry and idleness are enforced here at once (and by the gateway, and by a periodic task)."""
        expires_at: datetime | None = self.session.expires_at
        idle_s = self.session.idle_timeout.total_seconds()
        last_flush = time.monotonic()
        while not self.ended:
            await asyncio.sleep(WATCH_EVERY_S)
            if expires_at is not None and timezone.now() >= expires_at:
                await self._flush()
                await database_sync_to_async(services.end_session)(
                    session_id=self.session_id, state=MaintenanceSession.State.EXPIRED, reason="the session expired"
                )
                return
            if time.monotonic() - self.ledger.last_activity > idle_s:
                await self._flush()
                await database_sync_to_async(services.end_session)(
                    session_id=self.session_id,
                    state=MaintenanceSession.State.CLOSED,
                    reason=f"idle for {int(idle_s)} s",
                )
                return
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                last_flush = time.monotonic()
                await self._flush()
                # An admin may shorten (or the periodic task end) the session meanwhile.
                expires_at = await database_sync_to_async(selectors.session_deadline)(self.session_id)

    async def disconnect(self, code: int) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watchdog
        await self.leave()
        if self.session_id is None:
            return
        if self.recorder is not None:
            self.recorder.close()
        self.ledger.close_all("the session ended")
        await self._flush()
        await database_sync_to_async(services.technician_left)(
            session_id=self.session_id,
            user=self.scope["user"],
            reason=f"the technician's end disconnected ({code})",
        )


def _store_traffic(session_id: str, up: int, down: int, opened: list[Any], closed: list[dict[str, Any]]) -> None:
    for ledger in opened:
        services.record_connection(
            session_id=session_id,
            stream=ledger.stream,
            opened_at=datetime.fromtimestamp(ledger.opened_at, tz=timezone.get_current_timezone()),
        )
    services.record_traffic(session_id=session_id, up=up, down=down, closed=closed)
