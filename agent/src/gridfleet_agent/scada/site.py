"""The site as the SCADA and cloud protocols see it: one point map, the latest values, the controls.

`SiteImage` keeps the latest value of every site point, fed by the records the field stack
emits (telemetry, alarms) and by the read-back of every control. Each protocol service
(DNP3, IEC 60870-5-104, OPC UA, cloud MQTT) renders the same `SitePoint` list in its own
addressing; docs/field-devices.md prints the map per protocol.

`SiteControls` is what a SCADA control turns into: a power limit or a connect/disconnect for
every inverter of the site, sent down the field stack's one setpoint path and read back from
the inverters' registers. Nothing here writes to a device by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gridfleet_agent.field.config import DEVICE_KINDS
from gridfleet_agent.field.errors import ControlFailed, ControlRejected
from gridfleet_agent.field.setpoints import Connection, PowerLimit, Setpoint, SetpointResult

logger = logging.getLogger(__name__)

Value = float | bool | None
Listener = Callable[[Mapping[str, Value]], None]

#: Where a point sits in DNP3: (point type, index, multiplier); the wire carries value / multiplier.
Dnp3Address = tuple[Literal["AI", "BI"], int, float]


@dataclass(frozen=True)
class SitePoint:
    """One monitored point of the site, addressed in every protocol."""

    key: str  # "site.limit_pct", "inv-1.W"
    description: str
    unit: str
    binary: bool
    ioa: int  # IEC 60870-5-104 information object address
    dnp3: Dnp3Address | None = None  # None: not in the DNP3 map


@dataclass(frozen=True)
class SiteDevice:
    id: str
    kind: str


# -- the map --------------------------------------------------------------------------------------
# DNP3 indices follow the MESA-DER profile (IEEE 1815.2) as bundled with dnp3py (dnp3.mesa,
# full.json): system points by their profile index, each inverter and meter in the profile's
# equipment block. The profile lists one instance per equipment kind; instance n (1-based, in
# the order of the field configuration) sits at the block's indices + EQUIPMENT_STRIDE * (n - 1).
EQUIPMENT_STRIDE = 100

#: Telemetry point name -> (description, unit, inverter AI index, meter AI index, multiplier).
DEVICE_ANALOGS: tuple[tuple[str, str, str, int | None, int | None, float], ...] = (
    ("W", "active power", "W", 15069, 5005, 1.0),
    ("VAr", "reactive power", "var", 15070, 5009, 1.0),
    ("PF", "power factor", "", 15071, 5013, 0.01),
    ("VA", "apparent power", "VA", 15072, 5014, 1.0),
    ("Hz", "frequency", "Hz", None, 5004, 0.001),
    ("V", "AC voltage (line to neutral)", "V", 15076, 5015, 0.1),
    ("A", "AC current", "A", 15080, 5022, 0.1),
    ("DCW", "DC power", "W", 15073, None, 1.0),
    ("DCV", "DC voltage", "V", 15074, None, 0.1),
    ("DCA", "DC current", "A", 15075, None, 0.1),
    ("TmpCab", "cabinet temperature", "Cel", 15084, None, 0.1),
    ("WH", "energy delivered", "Wh", None, None, 1.0),
    ("St", "operating state (SunSpec St)", "", None, None, 1.0),
)
#: Inverter binary points: name -> (description, alarm code that sets it, MESA BI index).
DEVICE_BINARIES: tuple[tuple[str, str, str, int], ...] = (
    ("comms_lost", "no answer from the device", "field.comms_lost", 15013),
    ("ground_fault", "ground fault", "sunspec.evt1.ground_fault", 15016),
    ("dc_over_voltage", "DC over-voltage", "sunspec.evt1.dc_over_voltage", 15017),
    ("ac_disconnect", "AC disconnect open", "sunspec.evt1.ac_disconnect", 15019),
    ("dc_disconnect", "DC disconnect open", "sunspec.evt1.dc_disconnect", 15020),
    ("grid_disconnect", "disconnected from the grid", "sunspec.evt1.grid_disconnect", 15021),
    ("cabinet_open", "cabinet open", "sunspec.evt1.cabinet_open", 15022),
    ("manual_shutdown", "manual shutdown", "sunspec.evt1.manual_shutdown", 15023),
    ("over_temperature", "over-temperature", "sunspec.evt1.over_temperature", 15024),
    ("under_temperature", "under-temperature", "sunspec.evt1.under_temperature", 15025),
)

#: MESA status points that mirror the controls (BI69 DWMX.Mod, BI16 DGEN.PrmConn); AO87 is in 0.1 %.
DNP3_BI_LIMIT_ENABLED, DNP3_BI_CONNECTED, AO87_MULTIPLIER = 69, 16, 0.1

SITE_POINTS: tuple[SitePoint, ...] = (
    SitePoint("site.W", "active power of all inverters", "W", False, 1, ("AI", 900, 1.0)),
    SitePoint("site.VAr", "reactive power of all inverters", "var", False, 2, ("AI", 901, 1.0)),
    SitePoint("site.limit_pct", "active power limit in force (DWMX.WLimPct)", "%", False, 3, ("AI", 148, 0.1)),
    SitePoint(
        "site.limit_enabled",
        "active power limit mode enabled (DWMX.Mod)",
        "",
        True,
        4,
        ("BI", DNP3_BI_LIMIT_ENABLED, 1.0),
    ),
    SitePoint("site.connected", "permission to connect (DGEN.PrmConn)", "", True, 5, ("BI", DNP3_BI_CONNECTED, 1.0)),
    SitePoint("site.comms_error", "a field device does not answer (LCCH1.ChLiv)", "", True, 6, ("BI", 0, 1.0)),
    SitePoint("site.critical_alarm", "a critical alarm is active (CALH.GrAlm)", "", True, 7, ("BI", 1, 1.0)),
)

#: Controls, per protocol. DNP3: MESA AO87 (DWMX.WLimPct, 0.1 %), BO17 (DWMX.Mod), BO3 (DGEN.PrmConn).
DNP3_AO_LIMIT, DNP3_BO_LIMIT_ENABLE, DNP3_BO_CONNECT = 87, 17, 3
#: IEC 104: C_SE_NC_1 power limit percent, C_SC_NA_1 limit on/off, C_SC_NA_1 connect/disconnect.
IOA_LIMIT_SETPOINT, IOA_LIMIT_ENABLE, IOA_CONNECT = 5001, 5002, 5003
DEVICE_IOA_BASE, DEVICE_IOA_STRIDE, DEVICE_BINARY_IOA_OFFSET = 1000, 1000, 100


def site_points(devices: Sequence[SiteDevice]) -> list[SitePoint]:
    """The whole map for a site with these field devices (configuration order)."""
    points = list(SITE_POINTS)
    instance: dict[str, int] = {}
    for number, device in enumerate(devices, start=1):
        n = instance[device.kind] = instance.get(device.kind, 0) + 1
        shift = EQUIPMENT_STRIDE * (n - 1)
        ioa_base = DEVICE_IOA_BASE + DEVICE_IOA_STRIDE * (number - 1)
        for offset, (name, description, unit, inv_ai, meter_ai, multiplier) in enumerate(DEVICE_ANALOGS, start=1):
            index = inv_ai if device.kind == "inverter" else meter_ai if device.kind == "meter" else None
            dnp3: Dnp3Address | None = ("AI", index + shift, multiplier) if index is not None else None
            points.append(
                SitePoint(f"{device.id}.{name}", f"{device.id}: {description}", unit, False, ioa_base + offset, dnp3)
            )
        for offset, (name, description, _code, bi) in enumerate(DEVICE_BINARIES):
            dnp3 = ("BI", bi + shift, 1.0) if device.kind == "inverter" else None
            ioa = ioa_base + DEVICE_BINARY_IOA_OFFSET + offset
            points.append(SitePoint(f"{device.id}.{name}", f"{device.id}: {description}", "", True, ioa, dnp3))
    return points


_ALARM_POINTS = {code: name for name, _d, code, _bi in DEVICE_BINARIES}


class SiteImage:
    """The latest value of every point; listeners hear each change (on the agent's event loop)."""

    def __init__(self, devices: Sequence[SiteDevice]) -> None:
        self.devices = list(devices)
        self.points = site_points(self.devices)
        self.values: dict[str, Value] = {p.key: None for p in self.points}
        self._listeners: list[Listener] = []
        self._critical: set[tuple[str, str]] = set()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def observe(self, record: Mapping[str, Any]) -> None:
        """Take in one field record (`{"kind", "ts", "payload"}`)."""
        payload = record.get("payload") or {}
        if record.get("kind") == "telemetry":
            device, points = payload.get("device"), payload.get("points") or {}
            self.update(
                {f"{device}.{name}": value for name, value in points.items() if f"{device}.{name}" in self.values}
            )
        elif record.get("kind") == "alarm":
            device, code, raised = payload.get("device"), payload.get("code"), payload.get("state") == "raised"
            changes: dict[str, Value] = {}
            if code in _ALARM_POINTS and f"{device}.{_ALARM_POINTS[code]}" in self.values:
                changes[f"{device}.{_ALARM_POINTS[code]}"] = raised
            if payload.get("severity") == "critical":
                (self._critical.add if raised else self._critical.discard)((str(device), str(code)))
                changes["site.critical_alarm"] = bool(self._critical)
            self.update(changes)

    def update(self, changes: Mapping[str, Value]) -> None:
        changed = {k: v for k, v in changes.items() if self.values.get(k) != v}
        if not changed:
            return
        self.values.update(changed)
        changed.update(self._aggregates(changed))
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:  # one protocol's bug must not keep the others from hearing the change
                logger.exception("a site listener failed")

    def _aggregates(self, changed: Mapping[str, Value]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        inverters = [d.id for d in self.devices if d.kind == "inverter"]
        for total, name in (("site.W", "W"), ("site.VAr", "VAr")):
            if any(k == f"{i}.{name}" for i in inverters for k in changed):
                values = [v for i in inverters if isinstance(v := self.values.get(f"{i}.{name}"), int | float)]
                out[total] = float(sum(values)) if values else None
        if any(k.endswith(".comms_lost") for k in changed):
            out["site.comms_error"] = any(self.values.get(f"{d.id}.comms_lost") for d in self.devices)
        self.values.update(out)
        return out

    def point(self, key: str) -> SitePoint:
        return next(p for p in self.points if p.key == key)


class SetpointPath(Protocol):
    """The field stack's one setpoint path (gridfleet_agent.field.FieldStack)."""

    async def apply_setpoint(self, device_id: str, setpoint: Setpoint, *, source: str) -> SetpointResult: ...

    def device_ids(self, kind: str | None = None) -> list[str]: ...


@dataclass(frozen=True)
class ControlOutcome:
    """What every inverter read back after a site control."""

    readback: dict[str, dict[str, Any]]

    @property
    def message(self) -> str:
        return "; ".join(f"{device}: {values}" for device, values in self.readback.items())


class SiteControls:
    """Site-wide controls as SCADA sends them, each applied to every inverter and read back.

    Raises ControlRejected (out of range, no inverter, not implemented: nothing changed) or
    ControlFailed (an inverter did not take it). Controls are serialized: two masters writing
    at once apply one after the other, never interleaved per inverter.
    """

    def __init__(self, path: SetpointPath | None, site: SiteImage) -> None:
        self._path = path
        self.site = site
        self._lock = asyncio.Lock()

    async def set_power_limit(self, percent: float | None, *, source: str) -> ControlOutcome:
        outcome = await self._apply(PowerLimit(percent), source)
        applied = [v.get("WMaxLimPct") for v in outcome.readback.values()]
        numbers = [float(a) for a in applied if isinstance(a, int | float)]
        # In force: the tightest limit read back; none once lifted (the register keeps its last value).
        in_force = 100.0 if percent is None else min(numbers, default=percent)
        self.site.update({"site.limit_pct": in_force, "site.limit_enabled": percent is not None})
        return outcome

    async def set_connected(self, connected: bool, *, source: str) -> ControlOutcome:
        outcome = await self._apply(Connection(connected), source)
        self.site.update({"site.connected": connected})
        return outcome

    async def _apply(self, setpoint: Setpoint, source: str) -> ControlOutcome:
        if self._path is None:
            raise ControlRejected("no field devices are configured on this gateway")
        inverters = self._path.device_ids("inverter")
        if not inverters:
            raise ControlRejected("the site has no inverter to control")
        readback: dict[str, dict[str, Any]] = {}
        async with self._lock:
            for device in inverters:
                result = await self._path.apply_setpoint(device, setpoint, source=source)
                readback[device] = dict(result.readback)
        return ControlOutcome(readback)


def devices_of(path: SetpointPath | None) -> list[SiteDevice]:
    """The field stack's devices (configuration order) with their kinds, as the site has them."""
    if path is None:
        return []
    kinds = {device: kind for kind in DEVICE_KINDS for device in path.device_ids(kind)}
    return [SiteDevice(device, kinds.get(device, "other")) for device in path.device_ids()]


__all__ = [
    "ControlFailed",
    "ControlOutcome",
    "ControlRejected",
    "SiteControls",
    "SiteDevice",
    "SiteImage",
    "SitePoint",
    "devices_of",
    "site_points",
]
