"""The gateway as an IEC 61850 (MMS) client reading a field IED (pyiec61850-ng, libiec61850).

Every `poll_interval` seconds each configured data attribute is read by its object reference
(`"<IED><LD>/<LN>.<DO>.<DA...>"`, functional constraint MX unless given as a `[FC]` suffix, e.g.
`"meterLD0/MMXU1.TotW.mag.f"` or `"relayLD0/XCBR1.Pos.stVal[ST]"`). The values become a
`telemetry` record of the device under the configured point names (booleans as 1/0). A
reference the IED does not have is an error on the link naming it (the other points still go
out); a connection that fails is reopened on the next poll, and `comm_loss_after` seconds without
it raise the device's `field.comms_lost`, as for a SunSpec device. libiec61850's client blocks,
so each poll runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyiec61850.pyiec61850 as native
from pyiec61850.mms.client import MMSClient
from pyiec61850.mms.exceptions import MMSError

from gridfleet_agent.scada.status import LinkStatus

Emit = Callable[[dict[str, Any]], None]
MMS_PORT = 102


@dataclass(frozen=True)
class Iec61850DeviceConfig:
    id: str
    host: str
    kind: str = "meter"
    port: int = MMS_PORT
    poll_interval: float = 5.0
    timeout: float = 5.0
    comm_loss_after: float = 30.0
    #: point name -> object reference of the data attribute ("[FC]" suffix optional, MX by default)
    points: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


class Iec61850FieldDevice:
    """A supervised protocol service: one IEC 61850 IED read over MMS."""

    def __init__(self, config: Iec61850DeviceConfig, *, emit: Emit) -> None:
        self.config = config
        self._emit = emit
        self._client: MMSClient | None = None
        self.status = LinkStatus(
            name=f"iec61850:{config.id}",
            protocol="iec61850",
            role="client",
            endpoint=config.endpoint,
            state="down",
            points=len(config.points),
            comm_loss_after=config.comm_loss_after,
            device=config.id,
        )

    def inventory_entry(self) -> dict[str, Any]:
        return {
            "key": self.config.id,
            "kind": self.config.kind,
            "protocol": "iec61850",
            "address": self.config.endpoint,
        }

    async def run(self) -> None:
        try:
            while True:
                try:
                    values, problems = await asyncio.to_thread(self._poll)
                except MMSError as exc:
                    self._close()
                    self.status.error(f"{self.config.endpoint}: {exc}")
                    self.status.set_state("down")
                else:
                    self.status.set_state("connected", self.config.endpoint)
                    for problem in problems:
                        self.status.error(problem)
                    if values:
                        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                        self._emit(
                            {"kind": "telemetry", "ts": ts, "payload": {"device": self.config.id, "points": values}}
                        )
                await asyncio.sleep(self.config.poll_interval)
        finally:
            await asyncio.to_thread(self._close)
            self.status.set_state("down")

    def _poll(self) -> tuple[dict[str, float], list[str]]:
        """Runs in a worker thread: (values read, one message per reference that could not be)."""
        if self._client is None or not self._client.is_connected:
            client = MMSClient(timeout=int(self.config.timeout * 1000))
            client.connect(self.config.host, self.config.port)
            self._client = client
        values: dict[str, float] = {}
        problems: list[str] = []
        failed_reads: list[MMSError] = []
        for name, reference in self.config.points.items():
            path, fc = _split_fc(reference)
            try:
                value = self._client.read_value(path, fc)
            except MMSError as exc:
                failed_reads.append(exc)
                problems.append(f"{name} ({reference}): {exc}")
                continue
            if isinstance(value, bool):
                values[name] = 1 if value else 0
            elif isinstance(value, int | float):
                values[name] = value
            else:
                problems.append(f"{name} ({reference}): the IED has no such data attribute or it is not a number")
        if len(failed_reads) == len(self.config.points):  # nothing read at all: the link, not the points
            raise failed_reads[0]
        return values, problems

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(MMSError):
                client.disconnect()


FUNCTIONAL_CONSTRAINTS = ("ST", "MX", "SP", "SV", "CF", "DC", "SG", "SE", "SR", "OR", "BL", "EX", "CO")


def split_reference(reference: str) -> tuple[str, str]:
    """("<object reference>", "<FC>") from "<object reference>[FC]" (MX when no suffix)."""
    path, _, suffix = reference.partition("[")
    return path, suffix.rstrip("]") or "MX"


def _split_fc(reference: str) -> tuple[str, Any]:
    path, fc = split_reference(reference)
    return path, getattr(native, f"IEC61850_FC_{fc}")
