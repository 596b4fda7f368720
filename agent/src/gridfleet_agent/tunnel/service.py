"""The agent's end of remote maintenance tunnels: ``open_tunnel`` in, a WebSocket out.

``TunnelService.open`` answers the command at once: ``rejected`` with the reason (policy.py), or
``accepted``; the tunnel then dials ``args.url`` on the server with the gateway's bearer token and
serves streams until the server closes it, the session expires, it stays idle too long or the
uplink is cut. Its final answer (``succeeded`` with byte counts, or ``failed``) follows as a
second ``command_result``. The gateway never listens: every connection is outbound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gridfleet_tunnel import MAX_STREAMS, Endpoint, Frame, FrameError, Mux, StreamRefused
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from gridfleet_agent import __version__
from gridfleet_agent.config import RemoteAccessSection
from gridfleet_agent.tunnel.endpoints import SerialEndpoint, TerminalEndpoint, dial_tcp
from gridfleet_agent.tunnel.policy import (
    AllowList,
    Target,
    TunnelRefused,
    TunnelRequest,
    authorize,
    parse_request,
    reported,
)

logger = logging.getLogger(__name__)

Answer = tuple[str, str, dict[str, Any] | None]
Report = Callable[[str, str, str, dict[str, Any] | None], None]
"""(command id, status, message, result): queues a ``command_result``."""


def tunnel_url(server_url: str, path: str) -> str:
    scheme, _, rest = server_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


class TunnelService:
    def __init__(
        self,
        *,
        server_url: str,
        settings: RemoteAccessSection,
        signed_config: Callable[[], dict[str, Any] | None],
        field_devices: Callable[[], list[dict[str, Any]]],
        token: Callable[[], Awaitable[str]],
        report: Report,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.server_url = server_url
        self.settings = settings
        self._signed_config = signed_config
        self._field_devices = field_devices
        self._token = token
        self._report = report
        self._ssl = ssl_context if server_url.startswith("https://") else None
        self._sessions: dict[str, asyncio.Task[None]] = {}

    def allow_list(self) -> AllowList:
        return AllowList.from_config(self._signed_config())

    def inventory(self) -> dict[str, Any]:
        return reported(self.settings, self.allow_list())

    async def open(self, command_id: str, args: dict[str, Any], *, now: datetime | None = None) -> Answer:
        try:
            request = parse_request(args)
            if request.session in self._sessions:
                raise TunnelRefused(f"session {request.session} is already open here")
            target = authorize(
                request,
                local=self.settings,
                allowed=self.allow_list(),
                field_devices=self._field_devices(),
                open_sessions=len(self._sessions),
                now=now or datetime.now(UTC),
            )
        except TunnelRefused as e:
            logger.warning("remote access refused: %s", e)
            return "rejected", str(e), None
        task = asyncio.create_task(self._run(command_id, request, target), name=f"tunnel-{request.session}")
        self._sessions[request.session] = task
        task.add_done_callback(lambda _: self._sessions.pop(request.session, None))
        logger.info("remote access session %s to %s opening", request.session, target.label)
        return "accepted", f"tunnel to {target.label} opening", None

    async def close_all(self) -> None:
        for task in list(self._sessions.values()):
            task.cancel()
        await asyncio.gather(*self._sessions.values(), return_exceptions=True)

    async def _run(self, command_id: str, request: TunnelRequest, target: Target) -> None:
        tunnel = Tunnel(request, target)
        try:
            headers = {"Authorization": f"Bearer {await self._token()}"}
            async with connect(
                tunnel_url(self.server_url, request.url),
                additional_headers=headers,
                user_agent_header=f"gridfleet-agent/{__version__}",
                ssl=self._ssl,
                compression=None,  # field protocols are small binary frames; deflate costs latency
                open_timeout=30,
                max_size=2 * 1024 * 1024,
            ) as ws:
                ending = await tunnel.serve(ws)
        except (OSError, TimeoutError, WebSocketException, InvalidStatus) as e:
            self._report(command_id, "failed", f"tunnel to {target.label} failed: {e}", tunnel.result())
            return
        except Exception as e:  # e.g. no access token: the session is lost, the agent goes on
            logger.exception("tunnel %s failed", request.session)
            self._report(command_id, "failed", f"tunnel to {target.label} failed: {e}", tunnel.result())
            return
        self._report(command_id, "succeeded", f"tunnel to {target.label} ended: {ending}", tunnel.result())


class Tunnel:
    """One session's WebSocket: streams to the target until something ends it."""

    CHECK_EVERY = 1.0

    def __init__(self, request: TunnelRequest, target: Target) -> None:
        self.request = request
        self.target = target
        self.mux: Mux | None = None
        self.started = time.time()

    def result(self) -> dict[str, Any]:
        mux = self.mux
        return {
            "session": self.request.session,
            "bytes_to_target": mux.bytes_received if mux else 0,
            "bytes_from_target": mux.bytes_sent if mux else 0,
            "connections": mux.streams_opened if mux else 0,
            "seconds": round(time.time() - self.started, 1),
        }

    async def _open(self, frame: Frame) -> Endpoint:
        target = self.target
        if target.kind == "tcp":
            return await dial_tcp(target)
        if target.kind == "serial":
            return SerialEndpoint(target.serial)
        columns, rows = frame.size if frame.payload else (80, 24)
        return TerminalEndpoint(target.command, columns, rows)

    async def serve(self, ws: ClientConnection) -> str:
        """Relay until the server closes, the session expires or idles out; returns why it ended."""
        max_streams = MAX_STREAMS if self.target.kind == "tcp" else 1  # a port or a terminal is one stream
        self.mux = mux = Mux(ws.send, opener=self._open, max_streams=max_streams)
        watchdog = asyncio.create_task(self._watch(mux))
        reader = asyncio.create_task(self._read(ws, mux))
        try:
            done, _ = await asyncio.wait({watchdog, reader}, return_when=asyncio.FIRST_COMPLETED)
            ending = next(iter(done)).result()
        finally:
            for task in (watchdog, reader):
                task.cancel()
            await asyncio.gather(watchdog, reader, return_exceptions=True)
            await mux.close()
            with contextlib.suppress(Exception):
                await ws.close(1000, "tunnel ended")
        logger.info("remote access session %s ended: %s", self.request.session, ending)
        return ending

    async def _read(self, ws: ClientConnection, mux: Mux) -> str:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await mux.feed(message)
                else:
                    control = json.loads(message)
                    if control.get("type") == "end":
                        return str(control.get("reason") or "closed by the server")
        except ConnectionClosed as e:
            return f"connection closed ({e.rcvd.code if e.rcvd else 'no close frame'})"
        except (FrameError, StreamRefused, ValueError) as e:
            return f"protocol error: {e}"
        return "closed by the server"

    async def _watch(self, mux: Mux) -> str:
        """The gateway enforces the session's expiry and idle timeout itself."""
        while True:
            if datetime.now(UTC) >= self.request.expires_at:
                return "the session expired"
            if time.monotonic() - mux.last_activity > self.request.idle_timeout_s:
                return f"idle for {self.request.idle_timeout_s} s"
            await asyncio.sleep(self.CHECK_EVERY)
