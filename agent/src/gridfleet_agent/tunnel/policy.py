"""What a gateway lets a remote maintenance session reach: pure decisions, no I/O.

The server asks for a tunnel with ``open_tunnel`` (docs/protocol/tunnel.md); the agent refuses,
saying why, unless every check here passes. The allow-list comes from the signed configuration
(``remote_access`` in the active config bundle's config.json), so a compromised server cannot
open a port the operator did not sign for; the local ``[remote_access]`` settings can only
restrict it further (switch it off, fewer sessions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridfleet_agent.config import RemoteAccessSection
from gridfleet_agent.errors import AgentError

KINDS = ("tcp", "serial", "terminal")
PARITIES = ("N", "E", "O", "M", "S")
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1, 1.5, 2)
MAX_PORT = 65535
BAUDRATES = range(50, 4_000_001)
SESSION_ID = re.compile(r"^[0-9a-f-]{36}$")
TCP_ADDRESS = re.compile(r"^(?P<host>[^:/]+):(?P<port>\d+)(/\d+)?$")


class TunnelRefused(AgentError):
    """The gateway will not open this tunnel; the message is the answer the operator sees."""

    code = "tunnel_refused"


@dataclass(frozen=True)
class TunnelRequest:
    session: str
    url: str
    kind: str
    target: dict[str, Any]
    expires_at: datetime
    idle_timeout_s: int


@dataclass(frozen=True)
class Target:
    """Where the agent's end of the tunnel connects."""

    kind: str
    label: str
    host: str = ""
    port: int = 0
    serial: dict[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllowList:
    """``remote_access`` of the signed configuration."""

    targets: tuple[dict[str, Any], ...] = ()
    terminal: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> AllowList:
        section = (config or {}).get("remote_access")
        if not isinstance(section, dict):
            return cls()
        targets = tuple(t for t in section.get("targets") or [] if isinstance(t, dict))
        return cls(targets=targets, terminal=section.get("terminal") is True)


def parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a timestamp needs a UTC offset")
    return parsed


def parse_request(args: dict[str, Any]) -> TunnelRequest:
    session, url, kind, target = args.get("session"), args.get("url"), args.get("kind"), args.get("target")
    if not isinstance(session, str) or not SESSION_ID.match(session):
        raise TunnelRefused("args.session must be the session's id")
    if not isinstance(url, str) or not url.startswith("/"):
        raise TunnelRefused("args.url must be a path on the server")
    if kind not in KINDS:
        raise TunnelRefused(f"args.kind must be one of {', '.join(KINDS)}")
    if not isinstance(target, dict):
        raise TunnelRefused("args.target must be an object")
    idle = args.get("idle_timeout_s", 900)
    if isinstance(idle, bool) or not isinstance(idle, int) or idle < 1:
        raise TunnelRefused("args.idle_timeout_s must be a positive whole number of seconds")
    try:
        expires_at = parse_timestamp(args.get("expires_at"))
    except ValueError as e:
        raise TunnelRefused(f"args.expires_at: {e}") from None
    return TunnelRequest(session, url, str(kind), target, expires_at, idle)


def authorize(
    request: TunnelRequest,
    *,
    local: RemoteAccessSection,
    allowed: AllowList,
    field_devices: list[dict[str, Any]],
    open_sessions: int,
    now: datetime,
) -> Target:
    """The target to connect to, or TunnelRefused naming the rule that refused it."""
    if not local.enabled:
        raise TunnelRefused("remote access is switched off on this gateway by its site owner")
    if request.expires_at <= now:
        raise TunnelRefused(f"the session expired at {request.expires_at.isoformat()}")
    if open_sessions >= local.max_sessions:
        raise TunnelRefused(f"{open_sessions} tunnels are open; this gateway allows {local.max_sessions} at once")
    if request.kind == "terminal":
        if not allowed.terminal:
            raise TunnelRefused("the signed configuration does not allow a terminal on this gateway")
        if not local.terminal_command:
            raise TunnelRefused("no terminal_command is configured on this gateway")
        return Target("terminal", "terminal", command=local.terminal_command)
    if request.kind == "serial":
        return _serial_target(request.target, allowed)
    return _tcp_target(request.target, allowed, field_devices)


def _tcp_target(wanted: dict[str, Any], allowed: AllowList, field_devices: list[dict[str, Any]]) -> Target:
    port = wanted.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= MAX_PORT):
        raise TunnelRefused("target.port must be a TCP port number")
    if isinstance(wanted.get("device"), str):
        device = wanted["device"]
        label = f"{device}:{port}" if port else device
        if not any(e.get("device") == device and e.get("port") == port for e in allowed.targets):
            raise TunnelRefused(f"{label} is not on this gateway's allow-list")
        found = next((d for d in field_devices if d.get("key") == device), None)
        address = TCP_ADDRESS.match(str(found.get("address", ""))) if found else None
        if address is None:
            raise TunnelRefused(f"field device {device} is not known here as a TCP device")
        return Target("tcp", label, host=address["host"], port=port or int(address["port"]))
    host = wanted.get("host")
    if not isinstance(host, str) or not host or port is None:
        raise TunnelRefused("target must name a field device, or a host and a port")
    label = f"{host}:{port}"
    if not any(e.get("host") == host and e.get("port") == port for e in allowed.targets):
        raise TunnelRefused(f"{label} is not on this gateway's allow-list")
    return Target("tcp", label, host=host, port=port)


def _serial_target(wanted: dict[str, Any], allowed: AllowList) -> Target:
    port = wanted.get("serial")
    entry = next((e for e in allowed.targets if isinstance(port, str) and e.get("serial") == port), None)
    if entry is None:
        raise TunnelRefused(f"serial port {port} is not on this gateway's allow-list")
    settings = {
        "baudrate": wanted.get("baudrate", entry.get("baudrate", 9600)),
        "bytesize": wanted.get("bytesize", entry.get("bytesize", 8)),
        "parity": wanted.get("parity", entry.get("parity", "N")),
        "stopbits": wanted.get("stopbits", entry.get("stopbits", 1)),
    }
    baudrate = settings["baudrate"]
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate not in BAUDRATES:
        raise TunnelRefused("target.baudrate must be a whole number from 50 to 4000000")
    if settings["bytesize"] not in BYTESIZES or settings["parity"] not in PARITIES:
        raise TunnelRefused("target.bytesize must be 5..8 and target.parity one of N, E, O, M, S")
    if settings["stopbits"] not in STOPBITS:
        raise TunnelRefused("target.stopbits must be 1, 1.5 or 2")
    framing = f"{settings['bytesize']}{settings['parity']}{settings['stopbits']}"
    return Target("serial", f"{port} {baudrate} {framing}", serial={"port": port, **settings})


def reported(local: RemoteAccessSection, allowed: AllowList) -> dict[str, Any]:
    """What the gateway reports in its inventory: the server refuses early what would be refused here."""
    return {
        "enabled": local.enabled,
        "max_sessions": local.max_sessions,
        "terminal": allowed.terminal and bool(local.terminal_command),
        "targets": list(allowed.targets) if local.enabled else [],
    }
