"""py20305 connector that drives the DER through the agent's SunSpec field stack.

py20305 translates each DERControl into connector calls (`update_p_lim`, `update_p_lim_inj`, ...);
this connector turns them into the field stack's one setpoint path (`set_active_power_limit`: model
704 or 123 WMaxLimPct, written and read back) and raises py20305's connector errors when the
device refuses, so the event processor answers the utility with the matching Response code.

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

logger = logging.getLogger(__name__)


class SetpointPath(Protocol):
    """The field stack's setpoint entry (gridfleet_agent.field.FieldStack)."""

    async def set_active_power_limit(
        self, device_id: str, limit_pct: float | None, *, revert_after_s: int | None = None
    ) -> Any: ...


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
        revert_after_s: int = 0,
        on_applied: Callable[[float | None, Any], None] | None = None,
    ) -> None:
        self._field = field
        self._devices = devices
        self._latest = latest
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

    async def _apply(self) -> ConnectorPayload:
        limits = [p for p in (self._limit_pct, self._export_pct()) if p is not None]
        target = min(limits) if limits else None
        if target is not None and not 0 <= target <= 100:
            raise ConnectorValueError(f"power limit {target:.1f} % of WMax is outside 0..100 %")
        results = {}
        for device in self._devices:
            try:
                result = await self._field.set_active_power_limit(
                    device.field_device, target, revert_after_s=self._revert if target is not None else None
                )
            except Exception as exc:  # the field stack's ControlRejected / ControlFailed, or no answer
                name = type(exc).__name__
                logger.warning("utility control on %s not applied: %s", device.field_device, exc)
                if name == "ControlFailed":
                    raise ConnectorConnectionError(f"{device.field_device}: {exc}") from exc
                raise ConnectorWriteError(f"{device.field_device}: {exc}") from exc
            results[device.field_device] = getattr(result, "applied_pct", None)
        logger.info("utility control applied: WMaxLimPct=%s on %s", target, ", ".join(results))
        if self._on_applied is not None:
            self._on_applied(target, results)
        return {"WMaxLimPct": target, "readback": results}

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
        return status

    async def fetch_nameplate(self) -> dict[str, Any]:
        return {**await super().fetch_nameplate(), "WMaxRtg": self.rated_w}

    async def fetch_configuration(self) -> dict[str, Any]:
        return {**await super().fetch_configuration(), "WMax": self.rated_w}
