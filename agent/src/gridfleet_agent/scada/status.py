"""Link state, point counts and errors of each protocol service, and the supervisor that runs them.

Every protocol (DNP3 outstation and master, IEC 60870-5-104, OPC UA, each cloud broker) is a
`ProtocolService`: an async `run()` that serves until cancelled, and a `LinkStatus` it keeps
current. `Supervisor` runs each in its own task and restarts one that fails (with backoff) so
a crash or a malformed peer in one protocol never stops another. Link transitions become
`alarm` records (uplink section 3.2) through the `report` callback, and the statuses go into
the gateway's inventory attributes as `protocols` (docs/field-devices.md, "Protocol status").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gridfleet_agent.backoff import Backoff

logger = logging.getLogger(__name__)

LinkState = Literal["starting", "listening", "connected", "down", "failed"]
UP_STATES = frozenset({"connected"})
#: Alarm code of a protocol link that stayed down (uplink alarm record, per protocol source).
COMMS_LOST = "protocol.comms_lost"
ERROR_CHARS = 300
STABLE_RUN = 60.0  # seconds a service must have run for its restart backoff to start over

Report = Callable[[str, dict[str, Any]], None]  # (record kind, payload)


@dataclass
class LinkStatus:
    """What the gateway page shows for one protocol link.

    `comm_loss_after` seconds without a peer raise `protocol.comms_lost` for `source`; field
    devices polled over DNP3 use `field.comms_lost` with their device key instead (set
    `device`), exactly as SunSpec devices do.
    """

    name: str  # "dnp3-outstation", "iec104", "opcua", "dnp3-master:rtu-1", "mqtt:aws"
    protocol: str  # "dnp3", "iec104", "opcua", "mqtt"
    role: str  # "outstation", "master", "server", "client"
    endpoint: str = ""
    state: LinkState = "starting"
    peer: str = ""
    points: int = 0
    errors: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.time)
    comm_loss_after: float = 60.0
    device: str | None = None
    #: Protocol-specific facts for the gateway page (e.g. the OPC UA server certificate fingerprint).
    extra: dict[str, Any] = field(default_factory=dict)
    alarm_raised: bool = False
    _down_since: float | None = field(default_factory=time.monotonic)
    on_change: Callable[[LinkStatus], None] | None = None

    def set_state(self, state: LinkState, peer: str = "") -> None:
        if state == self.state and peer == self.peer:
            return
        self.state, self.peer, self.since = state, peer, time.time()
        if state in UP_STATES:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = time.monotonic()
        if self.on_change is not None:
            self.on_change(self)

    def error(self, message: str) -> None:
        """Count one error (malformed input, refused control, lost connection) and keep the last."""
        self.errors += 1
        self.last_error = " ".join(message.split())[:ERROR_CHARS]
        logger.warning("%s: %s", self.name, self.last_error)

    def down_for(self, now: float | None = None) -> float:
        if self._down_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self._down_since

    def as_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "protocol": self.protocol,
            "role": self.role,
            "endpoint": self.endpoint,
            "state": self.state,
            "peer": self.peer,
            "points": self.points,
            "errors": self.errors,
            "last_error": self.last_error,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
        }
        data.update(self.extra)
        return data


class ProtocolService(Protocol):
    status: LinkStatus

    async def run(self) -> None:
        """Serve until cancelled; raising means failed (the supervisor restarts it)."""


class Supervisor:
    """Runs services side by side; a failing one is restarted alone, with backoff."""

    def __init__(self, services: list[ProtocolService], *, report: Report, check_interval: float = 1.0) -> None:
        self.services = services
        self._report = report
        self.check_interval = check_interval
        self._tasks: list[asyncio.Task[None]] = []

    def statuses(self) -> list[dict[str, Any]]:
        return [s.status.as_dict() for s in self.services]

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._keep_running(s), name=f"protocol-{s.status.name}") for s in self.services
        ]
        self._tasks.append(asyncio.create_task(self._watch_links(), name="protocol-links"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _keep_running(self, service: ProtocolService) -> None:
        backoff = Backoff(base=1.0, cap=60.0)
        while True:
            started = time.monotonic()
            try:
                await service.run()
                raise RuntimeError("stopped by itself")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # restart this protocol only; the others go on
                logger.exception("protocol service %s failed", service.status.name)
                service.status.error(f"service failed: {exc}")
                service.status.set_state("failed")
            if time.monotonic() - started > STABLE_RUN:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    async def _watch_links(self) -> None:
        while True:
            self.check_links()
            await asyncio.sleep(self.check_interval)

    def check_links(self, now: float | None = None) -> None:
        """Raise the comms-lost alarm of a link down too long; clear it when the link is back."""
        for service in self.services:
            status = service.status
            down = status.down_for(now) >= status.comm_loss_after and status.state not in UP_STATES
            if down != status.alarm_raised:
                status.alarm_raised = down
                self._report("alarm", comms_alarm(status, raised=down))


def comms_alarm(status: LinkStatus, *, raised: bool) -> dict[str, Any]:
    """The `alarm` record payload for a link's communication loss (or its return)."""
    what = f"{status.protocol} {status.role} {status.endpoint}".strip()
    if status.device is not None:
        payload: dict[str, Any] = {
            "source": f"device:{status.device}",
            "device": status.device,
            "code": "field.comms_lost",
            "message": f"{status.device}: no answer over {what}",
        }
    else:
        payload = {
            "source": f"protocol:{status.name}",
            "code": COMMS_LOST,
            "message": f"{status.name}: no peer connected for {status.comm_loss_after:g} s ({what})",
        }
    payload.update(
        severity="major",
        state="raised" if raised else "cleared",
        details={"state": status.state, "last_error": status.last_error, "errors": status.errors},
    )
    return payload
