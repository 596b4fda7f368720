"""`gridfleet tunnel open`: listen on 127.0.0.1:PORT and carry each connection of the technician's
tool as one stream of the maintenance session's tunnel (docs/protocol/tunnel.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, TextIO

from gridfleet_tunnel import Mux, StreamEndpoint, StreamRefused, StreamStats
from gridfleet_tunnel.frames import FrameError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gridfleet_cli import __version__
from gridfleet_cli.client import CliError, Server

READY_TIMEOUT = 120.0  # the gateway dials in after its uplink delivers open_tunnel
APPROVAL_POLL = 2.0
UNIT = 1000  # decimal units, as network tools count


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < UNIT or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= UNIT
    return f"{count} B"


def wait_for_approval(server: Server, session: dict[str, Any], out: TextIO) -> dict[str, Any]:
    if session["state"] == "awaiting_approval":
        out.write(f"Session {session['id']} is waiting for an admin's approval...\n")
        out.flush()
    while session["state"] == "awaiting_approval":
        time.sleep(APPROVAL_POLL)
        session = server.call("GET", f"/api/remote-access/sessions/{session['id']}/")
    if session["state"] not in ("opening", "active"):
        raise CliError(f"session {session['id']} is {session['state']}: {session['end_reason']}")
    return dict(session)


class Forwarder:
    def __init__(self, server: Server, session: dict[str, Any], local_port: int, out: TextIO) -> None:
        self.server = server
        self.session = session
        self.local_port = local_port
        self.out = out
        self.ready = asyncio.Event()
        self.ending = "the connection to the server closed"

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _closed(self, stats: StreamStats) -> None:
        self.say(
            f"connection {stats.stream} closed after {time.time() - stats.opened_at:.1f} s: "
            f"{human_bytes(stats.bytes_sent)} sent, {human_bytes(stats.bytes_received)} received ({stats.reason})"
        )

    async def run(self) -> str:
        headers = {"Authorization": f"Token {self.server.token}"}
        try:
            async with connect(
                self.server.websocket_url(self.session["technician_url"]),
                additional_headers=headers,
                user_agent_header=f"gridfleet-cli/{__version__}",
                compression=None,
                max_size=2 * 1024 * 1024,
            ) as ws:
                return await self._serve(ws)
        except InvalidStatus as e:
            raise CliError(f"the server refused the tunnel: HTTP {e.response.status_code}") from None
        except OSError as e:
            raise CliError(f"cannot reach the server: {e}") from None

    async def _serve(self, ws: ClientConnection) -> str:
        mux = Mux(ws.send, on_stream_closed=self._closed)
        reader = asyncio.create_task(self._read(ws, mux))
        try:
            ready = asyncio.create_task(self.ready.wait())
            await asyncio.wait({reader, ready}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if not self.ready.is_set():
                return self.ending if reader.done() else "the gateway did not connect in time"
            listener = await asyncio.start_server(
                lambda r, w: self._tool_connected(mux, r, w), "127.0.0.1", self.local_port
            )
            port = listener.sockets[0].getsockname()[1]
            async with listener:
                self.say(
                    f"Forwarding 127.0.0.1:{port} -> {self.session['target_label']} on "
                    f"{self.session['gateway_serial']} (session {self.session['id']}, "
                    f"until {self.session.get('expires_at') or '-'}). Ctrl-C closes it."
                )
                return await reader
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await mux.close(self.ending)

    async def _tool_connected(self, mux: Mux, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        endpoint = StreamEndpoint(reader, writer)
        try:
            stats = await mux.open(endpoint)
        except StreamRefused as e:
            self.say(f"connection from {peer[0]}:{peer[1]} refused: {e}")
            await endpoint.close()
            return
        self.say(f"connection {stats.stream} from {peer[0]}:{peer[1]} opened")

    async def _read(self, ws: ClientConnection, mux: Mux) -> str:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await mux.feed(message)
                    continue
                control = json.loads(message)
                if control.get("type") == "ready":
                    self.ready.set()
                elif control.get("type") == "waiting":
                    self.say(f"Waiting for {self.session['gateway_serial']} to connect its end...")
                elif control.get("type") == "end":
                    self.ending = f"{control.get('state')}: {control.get('reason')}"
                    return self.ending
        except ConnectionClosed:
            pass
        except (FrameError, ValueError) as e:
            self.ending = f"protocol error: {e}"
        return self.ending


def open_tunnel(server: Server, session: dict[str, Any], local_port: int, out: TextIO) -> str:
    """Forward until the session ends; Ctrl-C closes the session. Returns why it ended."""
    session = wait_for_approval(server, session, out)
    try:
        return asyncio.run(Forwarder(server, session, local_port, out).run())
    except KeyboardInterrupt:
        with contextlib.suppress(CliError):
            server.call("POST", f"/api/remote-access/sessions/{session['id']}/close/")
        return "closed (Ctrl-C)"
