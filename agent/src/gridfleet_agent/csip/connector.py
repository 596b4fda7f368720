"""py20305 connector that drives the DER through the agent's SunSpec field stack.

py20305 translates each DERControl into connector calls (`update_p_lim`, `update_p_lim_inj`,
`update_connect`, `update_const_pf`); this connector turns them into setpoints on the field stack's
one setpoint path (`FieldStack.apply_setpoint`, source `ieee2030.5`: written, read back, logged and
reported) and raises py20305's connector errors when the device refuses, so the event processor
answers the utility with the matching Response code.

Both opModMaxLimW (% of setMaxW) and opModMaxLimWInject (2023: watts, here the export limit)
land on the one WMaxLimPct register: the lower of the two active limits is written. Without a site
meter the agent cannot see the load behind the meter, so an export limit is applied as a cap on
the inverter's output: conservative (the site exports at most that much), never over the limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from py20305.connectors.base import BaseConnector, ConnectorPayload
from py20305.connectors.errors import ConnectorConnectionError, ConnectorValueError, ConnectorWriteError

from gridfleet_agent.csip.config import DerDevice
from gridfleet_agent.field.errors import ControlFailed
from gridfleet_agent.field.setpoints import Connection, PowerFactor, PowerLimit, Setpoint, SetpointResult

logger = logging.getLogger(__name__)


SOURCE = "ieee2030.5"

#: Field alarm codes (SunSpec Evt1 / 701 Alrm, gridfleet_agent.field.events) -> IEEE 2030.5 DERStatus
#: alarmStatus bit. Only the unambiguous ones: the two bitmaps mean different things (ground
#: fault, over-temperature... have no 2030.5 bit), so they are translated, never copied.
#: py20305 turns alarmStatus transitions into LogEvents (code 2 x bit, 2 x bit + 1 on return).
DER_ALARM_BITS: dict[str, int] = {
    "sunspec.evt1.ac_over_voltage": 1,  # Over Voltage
    "sunspec.evt1.ac_under_voltage": 2,  # Under Voltage
    "sunspec.evt1.over_frequency": 3,  # Over Frequency
    "sunspec.evt1.under_frequency": 4,  # Under Frequency
}
MAX_PERCENT = 100


class SetpointPath(Protocol):
    """The field stack's one setpoint entry (gridfleet_agent.field.FieldStack.apply_setpoint)."""

    async def apply_setpoint(self, device_id: str, setpoint: Setpoint, *, source: str) -> SetpointResult: ...


class FieldStackConnector(BaseConnector):
    connector_name = "gridfleet-field-stack"
    der_type = 4  # PV
    telemetry_protocol = "modbus"

    def __init__(
        self,
        field: SetpointPath,
        devices: tuple[DerDevice, ...],
        *,
        latest: Callable[[str], dict[str, Any]],
        alarms: Callable[[str], int] | None = None,
        revert_after_s: int = 0,
        on_applied: Callable[[float | None, Any], None] | None = None,
    ) -> None:
        self._field = field
        self._devices = devices
        self._latest = latest
        self._alarms = alarms
        self._revert = revert_after_s or None
        self._limit_pct: float | None = None  # opModMaxLimW
        self._export_w: float | None = None  # opModMaxLimWInject
        self._on_applied = on_applied

    @property
    def rated_w(self) -> float:
        return sum(d.rated_w for d in self._devices)

    # -- controls --------------------------------------------------------------------------------

    async def update_p_lim(self, params: dict[str, Any]) -> ConnectorPayload:
        self._limit_pct = float(params["p_lim_w"]) if params.get("p_lim_mode_enable") else None
        return await self._apply()

    async def update_p_lim_inj(self, params: dict[str, Any]) -> ConnectorPayload:
        self._export_w = float(params["p_lim_watts"]) if params.get("p_lim_mode_enable") else None
        return await self._apply()

    def release_export_limit(self) -> None:
        """Forget the export limit; the next write no longer includes it."""
        self._export_w = None

    async def update_connect(self, params: dict[str, Any]) -> ConnectorPayload:
        return await self._write_all(Connection(bool(params.get("connected", True)), revert_after_s=self._revert))

    async def update_const_pf(self, params: dict[str, Any]) -> ConnectorPayload:
        inject = params.get("inj") or {}
        if not inject.get("mode"):
            return await self._write_all(PowerFactor(None))
        # sep2 excitation: false = over-excited (injecting vars), true = under-excited (absorbing).
        return await self._write_all(
            PowerFactor(float(inject["pf"]), absorbing_vars=bool(inject.get("excitation")), revert_after_s=self._revert)
        )

    async def _apply(self) -> ConnectorPayload:
        limits = [p for p in (self._limit_pct, self._export_pct()) if p is not None]
        target = min(limits) if limits else None
        if target is not None and not 0 <= target <= MAX_PERCENT:
            raise ConnectorValueError(f"power limit {target:.1f} % of WMax is outside 0..100 %")
        payload = await self._write_all(PowerLimit(target, revert_after_s=self._revert if target is not None else None))
        if self._on_applied is not None:
            self._on_applied(target, payload)
        return payload

    async def _write_all(self, setpoint: Setpoint) -> dict[str, Any]:
        readback = {}
        for device in self._devices:
            try:
                result = await self._field.apply_setpoint(device.field_device, setpoint, source=SOURCE)
            except ControlFailed as exc:  # tried and did not take: no answer, other value read back
                raise ConnectorConnectionError(f"{device.field_device}: {exc}") from exc
            except Exception as exc:  # ControlRejected and anything else: not applied
                raise ConnectorWriteError(f"{device.field_device}: {exc}") from exc
            readback[device.field_device] = result.readback
        return {"readback": readback}

    def _export_pct(self) -> float | None:
        if self._export_w is None:
            return None
        return min(100.0, max(0.0, 100.0 * self._export_w / self.rated_w))

    # -- telemetry (from the field stack's last poll) -----------------------------------------------

    async def fetch_monitoring(self) -> dict[str, Any]:
        totals: dict[str, Any] = {"W": None, "Var": None, "Hz": None, "V": None, "PF": None, "VA": None, "A": None}
        readings = [self._latest(d.field_device) for d in self._devices]
        readings = [r for r in readings if r]
        if not readings:
            return totals
        for key, source in (("W", "W"), ("Var", "VAr"), ("VA", "VA"), ("A", "A")):
            values = [r[source] for r in readings if isinstance(r.get(source), int | float)]
            totals[key] = sum(values) if values else None
        for key in ("Hz", "V", "PF"):
            values = [r[key] for r in readings if isinstance(r.get(key), int | float)]
            totals[key] = values[0] if values else None
        return totals

    async def fetch_status(self) -> dict[str, Any]:
        status = await super().fetch_status()
        status["readingTime"] = int(time.time())
        if self._alarms is not None:
            bits = 0
            for device in self._devices:
                bits |= self._alarms(device.field_device)
            status["alarmStatus"] = bits
        return status

    async def fetch_nameplate(self) -> dict[str, Any]:
        return {**await super().fetch_nameplate(), "WMaxRtg": self.rated_w}

    async def fetch_configuration(self) -> dict[str, Any]:
        return {**await super().fetch_configuration(), "WMax": self.rated_w}
