"""What a technician may ask to reach, checked against the gateway's reported allow-list. Pure.

The same rules as the agent's (gridfleet_agent.tunnel.policy), which decides again on the gateway:
a TCP target names a field device (its own port, or another port of its host) or a host and port;
a serial target names a serial port, with framing; a terminal needs the terminal allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleet.core.errors import DomainError

PARITIES = ("N", "E", "O", "M", "S")
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1, 1.5, 2)
MAX_PORT = 65535
BAUDRATES = range(50, 4_000_001)


class TargetRefused(DomainError):
    """The target is malformed or not on the gateway's allow-list."""

    status_code = 400


@dataclass(frozen=True)
class SessionTarget:
    kind: str
    target: dict[str, Any]
    label: str


def parse_target(
    kind: str, text: str, *, allowed: dict[str, Any], serial: dict[str, Any] | None = None
) -> SessionTarget:
    """`text` is DEVICE, DEVICE:PORT or HOST:PORT for TCP, the port's path for serial."""
    entries = [e for e in allowed.get("targets") or [] if isinstance(e, dict)]
    if allowed and allowed.get("enabled") is False:
        raise TargetRefused("The site owner switched remote access off on this gateway.", code="remote_access_off")
    if kind == "terminal":
        if not allowed.get("terminal"):
            raise TargetRefused(
                "This gateway's signed configuration does not allow a terminal.", code="not_allowed", field="target"
            )
        return SessionTarget("terminal", {}, "terminal")
    if kind == "serial":
        return _serial(text, serial or {}, entries)
    if kind != "tcp":
        raise TargetRefused("kind is one of tcp, serial, terminal.", field="kind")
    return _tcp(text, entries)


def _tcp(text: str, entries: list[dict[str, Any]]) -> SessionTarget:
    name, _, port_text = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= MAX_PORT:
            raise TargetRefused(f"'{port_text}' is not a TCP port number.", field="target")
        port = int(port_text)
    if not name:
        raise TargetRefused("Name a field device, DEVICE:PORT or HOST:PORT.", field="target")
    devices = {e.get("device") for e in entries if e.get("device")}
    if name in devices:
        wanted: dict[str, Any] = {"device": name, "port": port}
        allowed = any(e.get("device") == name and e.get("port") == port for e in entries)
    else:
        if port is None:
            raise TargetRefused(
                f"'{name}' is not a field device on the allow-list; give HOST:PORT for a host.", field="target"
            )
        wanted = {"host": name, "port": port}
        allowed = any(e.get("host") == name and e.get("port") == port for e in entries)
    if not allowed:
        raise TargetRefused(f"{text.strip()} is not on this gateway's allow-list.", code="not_allowed", field="target")
    return SessionTarget("tcp", wanted, text.strip())


def _serial(port: str, framing: dict[str, Any], entries: list[dict[str, Any]]) -> SessionTarget:
    entry = next((e for e in entries if e.get("serial") == port), None)
    if entry is None:
        raise TargetRefused(
            f"Serial port {port} is not on this gateway's allow-list.", code="not_allowed", field="target"
        )
    settings = {key: framing.get(key, entry.get(key, default)) for key, default in SERIAL_DEFAULTS.items()}
    baudrate = settings["baudrate"]
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate not in BAUDRATES:
        raise TargetRefused("baudrate must be a whole number from 50 to 4000000.", field="baudrate")
    if (
        settings["bytesize"] not in BYTESIZES
        or settings["parity"] not in PARITIES
        or settings["stopbits"] not in STOPBITS
    ):
        raise TargetRefused("Framing: bytesize 5..8, parity N/E/O/M/S, stopbits 1, 1.5 or 2.", field="serial")
    framing_text = f"{settings['bytesize']}{settings['parity']}{settings['stopbits']}"
    return SessionTarget("serial", {"serial": port, **settings}, f"{port} {baudrate} {framing_text}")


SERIAL_DEFAULTS: dict[str, Any] = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1}
