"""Local control socket of the running daemon, used by ``gridfleet-agent status`` and ``check-now``.

A Unix socket at ``<state_dir>/control.sock`` (mode 0600: root or the agent's user only). One JSON
line per request: ``{"command": "status"}`` or ``{"command": "check-now"}``; one JSON line back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridfleet_agent.errors import AgentError

if TYPE_CHECKING:
    from gridfleet_agent.daemon import Agent


class DaemonNotRunning(AgentError):
    """Nobody listens on the control socket."""


def control_path(state_dir: Path) -> Path:
    return state_dir / "control.sock"


async def serve_control(agent: Agent) -> None:
    path = control_path(agent.config.state_dir)
    path.unlink(missing_ok=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            command = request.get("command") if isinstance(request, dict) else None
            if command == "status":
                answer: dict[str, Any] = {"ok": True, "status": agent.status()}
            elif command == "check-now":
                agent.check_now.set()
                answer = {"ok": True, "message": "update check started"}
            else:
                answer = {"ok": False, "error": f"unknown command {command!r}; use status or check-now"}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(handle, path=str(path))
    os.chmod(path, 0o600)
    try:
        async with server:
            await server.serve_forever()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def request(state_dir: Path, command: str, *, timeout: float = 10.0) -> dict[str, Any]:
    path = control_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise DaemonNotRunning(f"no agent daemon is listening on {path}") from e
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    if not isinstance(answer, dict):
        raise ValueError("control socket answered something that is not an object")
    return answer
