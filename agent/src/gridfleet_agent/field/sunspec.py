"""Talking to one SunSpec Modbus device through pysunspec2: discovery, reads, power limit.

pysunspec2 (1.3.7) brings its own blocking Modbus TCP and RTU clients, so every method here
blocks; the stack runs them in worker threads. A lock per bus (a TCP connection, or a
serial port shared by several unit ids) keeps requests from interleaving, since pysunspec2's
RTU client is explicitly not safe for concurrent requests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sunspec2 import device as sunspec_device
from sunspec2.modbus import client as sunspec_client
from sunspec2.modbus import modbus as sunspec_modbus

from gridfleet_agent.field.config import DeviceConfig
from gridfleet_agent.field.errors import ControlFailed, ControlRejected, DeviceUnreachable
from gridfleet_agent.field.events import (
    EVENT_SOURCES,
    VENDOR_EVENT_POINTS,
    EventDefinition,
    EventSource,
    vendor_source,
)
from gridfleet_agent.field.setpoints import (
    CURVE_MODELS,
    Connection,
    Curve,
    PointValue,
    PowerFactor,
    PowerLimit,
    Setpoint,
    SetpointResult,
    describe,
)

INVERTER_MODELS = (101, 102, 103)
DER_MEASURE_MODEL = 701
DER_CONTROLS_MODEL = 704  # DER AC controls (SunSpec 2.x)
IMMEDIATE_CONTROLS_MODEL = 123  # immediate inverter controls (SunSpec 1.x)
METER_MODELS = (201, 202, 203, 204)
STORAGE_MODELS = (713, 714, 802)
#: Read every poll unless `models` narrows it: measurements, not settings. The DER settings
#: and curve models (702-712), 803 (battery strings) and the control models are read when
#: listed in `models`, their points (repeating groups included) reported raw.
TELEMETRY_MODELS = frozenset({*INVERTER_MODELS, DER_MEASURE_MODEL, *METER_MODELS, *STORAGE_MODELS})

#: Canonical telemetry name -> where to find it, first implemented source wins. Inverter
#: models come first because they are what most installed inverters implement in full.
#: Each source is (model ids, point name, factor applied after the scale factor).
#: Meters report W/VA/VAr as the meter sees them (SunSpec: positive = import from the grid).
TELEMETRY_SOURCES: dict[str, tuple[tuple[tuple[int, ...], str, float], ...]] = {
    "W": ((INVERTER_MODELS, "W", 1), ((701,), "W", 1), (METER_MODELS, "W", 1)),
    "VA": ((INVERTER_MODELS, "VA", 1), ((701,), "VA", 1), (METER_MODELS, "VA", 1)),
    "VAr": ((INVERTER_MODELS, "VAr", 1), ((701,), "Var", 1), (METER_MODELS, "VAR", 1)),
    # 101-103 and 201-204 give PF in percent, 701 as a ratio; telemetry always carries the ratio.
    "PF": ((INVERTER_MODELS, "PF", 0.01), ((701,), "PF", 1), (METER_MODELS, "PF", 0.01)),
    "Hz": ((INVERTER_MODELS, "Hz", 1), ((701,), "Hz", 1), (METER_MODELS, "Hz", 1)),
    "A": ((INVERTER_MODELS, "A", 1), ((701,), "A", 1), (METER_MODELS, "A", 1)),
    "AphA": ((INVERTER_MODELS, "AphA", 1), ((701,), "AL1", 1), (METER_MODELS, "AphA", 1)),
    "AphB": ((INVERTER_MODELS, "AphB", 1), ((701,), "AL2", 1), (METER_MODELS, "AphB", 1)),
    "AphC": ((INVERTER_MODELS, "AphC", 1), ((701,), "AL3", 1), (METER_MODELS, "AphC", 1)),
    "V": ((INVERTER_MODELS, "PhVphA", 1), ((701,), "LNV", 1), (METER_MODELS, "PhV", 1)),
    "PhVphA": ((INVERTER_MODELS, "PhVphA", 1), ((701,), "VL1", 1), (METER_MODELS, "PhVphA", 1)),
    "PhVphB": ((INVERTER_MODELS, "PhVphB", 1), ((701,), "VL2", 1), (METER_MODELS, "PhVphB", 1)),
    "PhVphC": ((INVERTER_MODELS, "PhVphC", 1), ((701,), "VL3", 1), (METER_MODELS, "PhVphC", 1)),
    "PPVphAB": ((INVERTER_MODELS, "PPVphAB", 1), ((701,), "VL1L2", 1), (METER_MODELS, "PPVphAB", 1)),
    "PPVphBC": ((INVERTER_MODELS, "PPVphBC", 1), ((701,), "VL2L3", 1), (METER_MODELS, "PPVphBC", 1)),
    "PPVphCA": ((INVERTER_MODELS, "PPVphCA", 1), ((701,), "VL3L1", 1), (METER_MODELS, "PPVphCA", 1)),
    "WphA": ((METER_MODELS, "WphA", 1), ((701,), "WL1", 1)),
    "WphB": ((METER_MODELS, "WphB", 1), ((701,), "WL2", 1)),
    "WphC": ((METER_MODELS, "WphC", 1), ((701,), "WL3", 1)),
    "WH": ((INVERTER_MODELS, "WH", 1), ((701,), "TotWhInj", 1)),
    "WHAbs": (((701,), "TotWhAbs", 1),),
    "TotWhExp": ((METER_MODELS, "TotWhExp", 1),),
    "TotWhImp": ((METER_MODELS, "TotWhImp", 1),),
    "DCA": ((INVERTER_MODELS, "DCA", 1), ((714,), "DCA", 1), ((802,), "A", 1)),
    "DCV": ((INVERTER_MODELS, "DCV", 1), ((802,), "V", 1)),
    "DCW": ((INVERTER_MODELS, "DCW", 1), ((714,), "DCW", 1), ((802,), "W", 1)),
    "DCWhInj": (((714,), "DCWhInj", 1),),
    "DCWhAbs": (((714,), "DCWhAbs", 1),),
    "SoC": (((713,), "SoC", 1), ((802,), "SoC", 1)),
    "SoH": (((713,), "SoH", 1), ((802,), "SoH", 1)),
    "WHRtg": (((713,), "WHRtg", 1), ((802,), "WHRtg", 1)),
    "WHAvail": (((713,), "WHAvail", 1),),
    "StorSta": (((713,), "Sta", 1),),
    "ChaSt": (((802,), "ChaSt", 1),),
    "BatSt": (((802,), "State", 1),),
    "TmpCab": ((INVERTER_MODELS, "TmpCab", 1), ((701,), "TmpCab", 1)),
    "TmpSnk": ((INVERTER_MODELS, "TmpSnk", 1), ((701,), "TmpSnk", 1)),
    "TmpTrns": ((INVERTER_MODELS, "TmpTrns", 1), ((701,), "TmpTrns", 1)),
    "TmpOt": ((INVERTER_MODELS, "TmpOt", 1), ((701,), "TmpOt", 1)),
    "TmpAmb": (((701,), "TmpAmb", 1),),
    "St": ((INVERTER_MODELS, "St", 1),),
    "InvSt": (((701,), "InvSt", 1),),
    "ConnSt": (((701,), "ConnSt", 1),),
    "ThrotPct": (((701,), "ThrotPct", 1),),
}

#: Power limit controls, preferred first: (model, percent point, enable point, revert timer point).
POWER_LIMIT_CONTROLS = (
    (704, "WMaxLimPct", "WMaxLimPctEna", "WMaxLimPctRvrtTms"),
    (123, "WMaxLimPct", "WMaxLim_Ena", "WMaxLimPct_RvrtTms"),
)

#: Connect/disconnect controls, preferred first: (model, point, revert timer point or None).
#: 703 ES is IEEE 1547 "permit service" (0 = cease to energize and trip); 123 Conn is immediate.
CONNECTION_CONTROLS = ((703, "ES", None), (123, "Conn", "Conn_RvrtTms"))

#: AdptCrvRslt / AdptCtlRslt values of the 705-712 models, and how long to wait for adoption.
ADOPT_IN_PROGRESS, ADOPT_COMPLETED, ADOPT_FAILED = 0, 1, 2
ADOPT_POLLS, ADOPT_POLL_INTERVAL = 10, 0.1

_POINT_REF = re.compile(r"^(\d+)\.([A-Za-z][A-Za-z0-9_]*)$")
_COMM_ERRORS = (sunspec_client.SunSpecModbusClientError, sunspec_modbus.ModbusClientError, OSError)
_bus_locks: dict[str, threading.Lock] = {}
_bus_locks_guard = threading.Lock()


@dataclass(frozen=True)
class DeviceIdentity:
    """What model 1 (common) says about the device, plus the models found."""

    make: str | None
    model: str | None
    serial: str | None
    firmware_version: str | None
    sunspec_models: tuple[int, ...]


@dataclass(frozen=True)
class EventReading:
    source: EventSource
    #: Union of the source's implemented bitfields.
    bits: int
    #: The bitfields read, as "<model>.<point>".
    points: tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    values: dict[str, float | int]
    #: One entry per event source with at least one implemented bitfield.
    events: tuple[EventReading, ...] = ()


def bus_lock(bus: str) -> threading.Lock:
    """The one lock of a bus ("tcp:host:port:unit" or "rtu:/dev/ttyX"), shared by its devices."""
    with _bus_locks_guard:
        return _bus_locks.setdefault(bus, threading.Lock())


class SunSpecDevice:
    """One configured SunSpec device. Not thread-safe by itself: call through the bus lock."""

    def __init__(
        self,
        config: DeviceConfig,
        vendor_events: Mapping[str, Mapping[str, Mapping[int, EventDefinition]]] | None = None,
    ) -> None:
        self.config = config
        self.vendor_events = vendor_events or {}
        self._event_sources: tuple[str | None, tuple[EventSource, ...]] | None = None
        self._device: sunspec_client.SunSpecModbusClientDevice | None = None
        self.identity: DeviceIdentity | None = None
        if config.protocol == "sunspec-tcp":
            self.lock = bus_lock(f"tcp:{config.host}:{config.port}:{config.unit_id}")
        else:
            self.lock = bus_lock(f"rtu:{config.serial_port}")

    def discover(self) -> DeviceIdentity:
        """Find the SunSpec map, list its models and read model 1."""
        with self.lock:
            self._disconnect()
            device = self._open()
            try:
                device.scan(full_model_read=False)
                device.connect()  # scan() disconnects; keep one connection for the polls that follow
                common = device.models[1][0]
                common.read()
            except _COMM_ERRORS as exc:
                self._disconnect()
                raise DeviceUnreachable(_one_line(exc)) from exc
            except (KeyError, IndexError) as exc:
                self._disconnect()
                raise DeviceUnreachable("SunSpec map has no model 1 (common)") from exc
            self._device = device
            self.identity = DeviceIdentity(
                make=_text(common.points["Mn"].value),
                model=_text(common.points["Md"].value),
                serial=_text(common.points["SN"].value),
                firmware_version=_text(common.points["Vr"].value),
                sunspec_models=tuple(m.model_id for m in device.model_list),
            )
            return self.identity

    @property
    def needs_discovery(self) -> bool:
        """True before the first discovery and after any communication error."""
        return self._device is None

    def read(self) -> Reading:
        """Read the models in scope; scale factors applied, 'not implemented' left out."""
        with self.lock:
            device = self._require_discovered()
            present = {m.model_id: m for m in device.model_list}
            wanted = self.config.models if self.config.models is not None else TELEMETRY_MODELS
            asked = set(wanted) | {model_id for model_id, _ in self.config.points}
            scope = (asked & present.keys()) - {1}
            try:
                for model_id in sorted(scope):
                    present[model_id].read()
            except _COMM_ERRORS as exc:
                self._disconnect()
                raise DeviceUnreachable(_one_line(exc)) from exc
            return self._reading(present, scope)

    def apply(self, setpoint: Setpoint) -> SetpointResult:
        """Write a setpoint to the model that carries it, read it back and compare.

        Raises ControlRejected (no model carries it, bad value, the device refused) or
        ControlFailed (no answer, or a different value read back).
        """
        with self.lock:
            device = self._require_discovered()
            try:
                return self._apply(device, setpoint)
            except sunspec_modbus.ModbusClientException as exc:
                raise ControlRejected(f"device refused {_what(setpoint)}: {_one_line(exc)}") from exc
            except (sunspec_client.SunSpecModbusValueError, sunspec_device.ModelError) as exc:
                raise ControlRejected(f"{_what(setpoint)} does not fit the device's registers: {exc}") from exc
            except _COMM_ERRORS as exc:
                self._disconnect()
                raise ControlFailed(f"no answer while applying {_what(setpoint)}: {_one_line(exc)}") from exc

    def close(self) -> None:
        with self.lock:
            self._disconnect()

    # -- internals ------------------------------------------------------------------------

    # One case per setpoint kind of a closed union: flat reads better than a method per kind.
    def _apply(self, device: Any, setpoint: Setpoint) -> SetpointResult:  # noqa: C901, PLR0912
        models = device.models
        match setpoint:
            case PowerLimit(percent=percent, revert_after_s=revert):
                for model_id, pct, ena, revert_name in POWER_LIMIT_CONTROLS:
                    if model_id in models:
                        values: dict[str, Any] = {} if percent is None else {pct: percent}
                        values[ena] = 0 if percent is None else 1
                        if revert is not None:
                            values[revert_name] = revert
                        return self._result(setpoint, models[model_id][0], values)
                raise ControlRejected("device has no power limit control (SunSpec model 704 or 123)")
            case Connection(connected=connected, revert_after_s=revert):
                for model_id, conn, conn_revert in CONNECTION_CONTROLS:
                    if model_id in models:
                        values = {conn: int(connected)}
                        if revert is not None and conn_revert is not None:
                            values[conn_revert] = revert
                        return self._result(setpoint, models[model_id][0], values)
                raise ControlRejected("device has no connect/disconnect control (SunSpec model 703 or 123)")
            case PowerFactor(pf=pf, absorbing_vars=absorbing, revert_after_s=revert):
                if DER_CONTROLS_MODEL in models:
                    values = {"PFWInjEna": 0}
                    if pf is not None:
                        values = {"PFWInjEna": 1, "PFWInj": {"PF": pf, "Ext": int(absorbing)}}
                    if revert is not None:
                        values["PFWInjRvrtTms"] = revert
                    return self._result(setpoint, models[DER_CONTROLS_MODEL][0], values)
                if IMMEDIATE_CONTROLS_MODEL in models:
                    # Model 123 carries the excitation as the sign of OutPFSet.
                    values = {"OutPFSet_Ena": 0}
                    if pf is not None:
                        values = {"OutPFSet_Ena": 1, "OutPFSet": -pf if absorbing else pf}
                    if revert is not None:
                        values["OutPFSet_RvrtTms"] = revert
                    return self._result(setpoint, models[IMMEDIATE_CONTROLS_MODEL][0], values)
                raise ControlRejected("device has no fixed power factor control (SunSpec model 704 or 123)")
            case Curve(model=model_id):
                if model_id not in models:
                    have = sorted(m for m in models if isinstance(m, int) and m in CURVE_MODELS)
                    raise ControlRejected(
                        f"device has no model {model_id} ({CURVE_MODELS[model_id]}); its curve models: {have or 'none'}"
                    )
                return self._apply_curve(setpoint, models[model_id][0])
            case PointValue(point=ref, value=value):
                match = _POINT_REF.match(ref)
                if match is None:
                    raise ControlRejected(f"{ref}: a SunSpec point is written as '<model>.<point>', e.g. '704.WSetPct'")
                model_id, name = int(match.group(1)), match.group(2)
                if model_id not in models:
                    raise ControlRejected(f"{ref}: device has no model {model_id}")
                return self._result(setpoint, models[model_id][0], {name: value})
        raise ControlRejected(f"unknown setpoint {setpoint!r}")

    def _result(self, setpoint: Setpoint, model: Any, values: Mapping[str, Any]) -> SetpointResult:
        readback = _write_and_verify(model, values, what=_what(setpoint))
        return SetpointResult(self.config.id, setpoint, model.model_id, readback)

    def _apply_curve(self, setpoint: Curve, model: Any) -> SetpointResult:
        """Load a curve the way SunSpec DER models want it: write it into a writable curve
        slot, ask the device to adopt that slot (AdptCrvReq), wait for AdptCrvRslt, enable."""
        what = _what(setpoint)
        model.read()
        if not setpoint.enabled:
            readback = _write_and_verify(model, {"Ena": 0}, what=what)
            return SetpointResult(self.config.id, setpoint, model.model_id, readback)
        group = "Ctl" if "Ctl" in model.groups else "Crv"
        request, outcome = ("AdptCtlReq", "AdptCtlRslt") if group == "Ctl" else ("AdptCrvReq", "AdptCrvRslt")
        slots = model.groups.get(group) or []
        writable = [s for s in slots if s.points["ReadOnly"].value != 1]
        # Slot 1 is the active curve on most devices; load another one and adopt it.
        slot = next((s for s in writable if s.index != 1), writable[0] if writable else None)
        if slot is None:
            raise ControlRejected(f"{what}: every {group} slot of model {model.model_id} is read-only")
        readback = _write_and_verify(model, {group: {slot.index: dict(setpoint.settings)}}, what=what)
        _write_and_verify(model, {request: slot.index}, what=what)
        result = model.points[outcome]
        for _ in range(ADOPT_POLLS):
            if result.value != ADOPT_IN_PROGRESS:
                break
            time.sleep(ADOPT_POLL_INTERVAL)
            model.read()
        if result.value != ADOPT_COMPLETED:
            state = {ADOPT_IN_PROGRESS: "still in progress", ADOPT_FAILED: "failed"}.get(result.value, result.value)
            raise ControlRejected(f"{what}: the device did not adopt {group} {slot.index} ({outcome}: {state})")
        readback.update(_write_and_verify(model, {"Ena": 1}, what=what))
        readback.update({request: slot.index, outcome: result.value})
        return SetpointResult(self.config.id, setpoint, model.model_id, readback)

    def _reading(self, present: dict[int, Any], scope: Iterable[int]) -> Reading:
        values: dict[str, float | int] = {}
        for name, sources in TELEMETRY_SOURCES.items():
            for model_ids, point_name, factor in sources:
                value = _first_value(present, scope, model_ids, point_name)
                if value is not None:
                    values[name] = round(value * factor, 6) if factor != 1 else value
                    break
        for model_id, path in self.config.points:
            point = _resolve(present[model_id], path) if model_id in present else None
            if point is not None and _is_number(point.cvalue):
                values[f"{model_id}.{path}"] = point.cvalue
        # Models asked for by id beyond the telemetry ones report every point raw, repeating
        # groups as "<model>.<Group>[<n>].<Point>" (e.g. "705.Crv[1].Pt[2].V").
        for model_id in sorted(set(scope) - TELEMETRY_MODELS):
            for name, value in _flatten(present[model_id], f"{model_id}."):
                values.setdefault(name, value)
        return Reading(values=values, events=self._events(present, scope))

    def event_sources(self) -> tuple[EventSource, ...]:
        """The standard sources plus one per vendor bitfield, named through this make's table."""
        make = self.identity.make if self.identity else None
        if self._event_sources is None or self._event_sources[0] != make:  # built once per make
            vendor = tuple(vendor_source(make, m, p, self.vendor_events) for m, p in VENDOR_EVENT_POINTS)
            self._event_sources = (make, (*EVENT_SOURCES, *vendor))
        return self._event_sources[1]

    def _events(self, present: dict[int, Any], scope: Iterable[int]) -> tuple[EventReading, ...]:
        readings: list[EventReading] = []
        for source in self.event_sources():
            bits: int | None = None
            points: list[str] = []
            for model_id, point_name in source.points:
                point = present[model_id].points.get(point_name) if model_id in scope else None
                if point is not None and point.value is not None:
                    bits = (bits or 0) | int(point.value)
                    points.append(f"{model_id}.{point_name}")
            if bits is not None:
                readings.append(EventReading(source, bits, tuple(points)))
        return tuple(readings)

    def _open(self) -> sunspec_client.SunSpecModbusClientDevice:
        cfg = self.config
        if cfg.protocol == "sunspec-tcp":
            return sunspec_client.SunSpecModbusClientDeviceTCP(
                slave_id=cfg.unit_id, ipaddr=cfg.host, ipport=cfg.port, timeout=cfg.timeout
            )
        try:
            device = sunspec_client.SunSpecModbusClientDeviceRTU(
                slave_id=cfg.unit_id,
                name=cfg.serial_port,
                baudrate=cfg.baudrate,
                parity=cfg.parity,
                timeout=cfg.timeout,
            )
            device.open()
        except _COMM_ERRORS as exc:  # includes pyserial's SerialException, an OSError
            raise DeviceUnreachable(f"serial port {cfg.serial_port}: {_one_line(exc)}") from exc
        return device

    def _require_discovered(self) -> Any:
        if self._device is None or self.identity is None:
            raise DeviceUnreachable("device not discovered yet")
        return self._device

    def _disconnect(self) -> None:
        if self._device is not None:
            if isinstance(self._device, sunspec_client.SunSpecModbusClientDeviceTCP):
                self._device.disconnect()
            else:
                self._device.close()
            self._device = None


def _first_value(present: dict[int, Any], scope: Iterable[int], model_ids: tuple[int, ...], point: str) -> Any:
    for model_id in model_ids:
        if model_id in scope and model_id in present:
            p = present[model_id].points.get(point)
            if p is not None and p.cvalue is not None:
                return p.cvalue
    return None


_PATH_PART = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def _resolve(model: Any, path: str) -> Any:
    """The point at 'Point' or 'Group[n].Sub[m].Point' in a model, None if it has none."""
    node = model
    *groups, last = path.split(".")
    for part in groups:
        match = _PATH_PART.match(part)
        sub = node.groups.get(match.group(1)) if match else None
        if isinstance(sub, list):
            index = int(match.group(2) or 1) if match else 1
            sub = sub[index - 1] if 1 <= index <= len(sub) else None
        if sub is None:
            return None
        node = sub
    return node.points.get(last)


def _flatten(group: Any, prefix: str) -> Iterable[tuple[str, float | int]]:
    """Every numeric point of a group and its subgroups, scale factors applied."""
    for name, point in group.points.items():
        if name not in ("ID", "L") and not name.endswith("_SF") and _is_number(point.cvalue):
            yield f"{prefix}{name}", point.cvalue
    for name, sub in group.groups.items():
        for index, entry in enumerate(sub if isinstance(sub, list) else [sub], start=1):
            yield from _flatten(entry, f"{prefix}{name}[{index}]." if isinstance(sub, list) else f"{prefix}{name}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = value.strip("\x00 ").strip()
    return cleaned or None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _write_and_verify(model: Any, values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Write `values` (engineering units; groups as nested objects, repeating groups as lists
    or {index: entry}) to one model in as few Modbus writes as pysunspec2 makes of it, read the
    model back and return the written points as read. ControlFailed when one differs by more
    than its resolution (half a unit of its scale factor)."""
    model.read()  # current scale factors and group layout
    written: list[tuple[str, Any, float]] = []
    _assign(model, values, f"{model.model_id}", written)
    model.write()
    model.read()
    readback: dict[str, Any] = {}
    wrong: list[str] = []
    for path, point, wanted in written:
        got = point.cvalue
        resolution = 10.0 ** (point.sf_value or 0) if point.sf_required else 1.0
        if got is None or abs(got - wanted) > resolution / 2 + 1e-9:
            wrong.append(f"{path}={got}")
        _put(readback, path.split(".", 1)[1], got)
    if wrong:
        raise ControlFailed(f"read back {' '.join(wrong)} after writing {what}; the device did not apply it")
    return readback


def _assign(group: Any, values: Mapping[str, Any], path: str, written: list[tuple[str, Any, float]]) -> None:
    if not isinstance(values, Mapping):
        raise ControlRejected(f"{path}: must be an object of point names")
    for name, value in values.items():
        where = f"{path}.{name}"
        if name in group.points:
            point = group.points[name]
            if point.pdef.get("access") != "RW":
                raise ControlRejected(f"{where} is read-only")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlRejected(f"{where}: must be a number (got {value!r})")
            _set_point(point, value, where)
            written.append((where, point, float(value)))
        elif name in group.groups:
            sub = group.groups[name]
            if not isinstance(sub, list):
                _assign(sub, value, where, written)
                continue
            entries = dict(enumerate(value, start=1)) if isinstance(value, list) else value
            if not isinstance(entries, Mapping) or not all(isinstance(i, int) for i in entries):
                raise ControlRejected(f"{where}: must be a list of entries")
            for index, entry in entries.items():
                if not 1 <= index <= len(sub):
                    raise ControlRejected(f"{where}: the device holds {len(sub)} entries, got entry {index}")
                _assign(sub[index - 1], entry, f"{where}[{index}]", written)
            # A curve's ActPt says how many of its points are in use.
            if name == "Pt" and "ActPt" in group.points and "ActPt" not in values and isinstance(value, list):
                _set_point(group.points["ActPt"], len(value), f"{path}.ActPt")
                written.append((f"{path}.ActPt", group.points["ActPt"], float(len(value))))
        else:
            raise ControlRejected(f"{where}: model {group.model.model_id} has no point or group {name!r}")


def _set_point(point: Any, value: float, where: str) -> None:
    if point.sf_required:
        sf_point = (point.group.points.get(point.sf) or point.model.points.get(point.sf)) if point.sf else None
        if sf_point is not None and sf_point.value is None:
            point.value = round(value)  # scale factor not implemented: whole units
        else:
            point.cvalue = value
    elif float(value).is_integer():
        point.value = int(value)
    else:
        raise ControlRejected(f"{where}: the device holds whole numbers only (got {value})")


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    """readback["Crv"]["2"]["Pt"]["1"]["V"] = value, from 'Crv[2].Pt[1].V'."""
    node = tree
    parts = re.split(r"\.|\[|\]\.?", path.rstrip("]"))
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _what(setpoint: Setpoint) -> str:
    data = describe(setpoint)
    return str(data.pop("kind")) + " " + " ".join(f"{k}={v}" for k, v in data.items() if v is not None)
