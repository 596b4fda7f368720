"""Talking to one SunSpec Modbus device through pysunspec2: discovery, reads, power limit.

pysunspec2 (1.3.7) brings its own blocking Modbus TCP and RTU clients, so every method here
blocks; the stack runs them in worker threads. A lock per bus (a TCP connection, or a
serial port shared by several unit ids) keeps requests from interleaving, since pysunspec2's
RTU client is explicitly not safe for concurrent requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sunspec2.modbus import client as sunspec_client
from sunspec2.modbus import modbus as sunspec_modbus

from gridfleet_agent.errors import AgentError
from gridfleet_agent.field.config import DeviceConfig
from gridfleet_agent.field.events import INVERTER_EVENT_POINTS

INVERTER_MODELS = (101, 102, 103)
DER_MEASURE_MODEL = 701
TELEMETRY_MODELS = frozenset({*INVERTER_MODELS, DER_MEASURE_MODEL})

#: Canonical telemetry name -> where to find it, first implemented source wins. Inverter
#: models come first because they are what most installed inverters implement in full.
#: Each source is (model ids, point name, factor applied after the scale factor).
TELEMETRY_SOURCES: dict[str, tuple[tuple[tuple[int, ...], str, float], ...]] = {
    "W": ((INVERTER_MODELS, "W", 1), ((701,), "W", 1)),
    "VA": ((INVERTER_MODELS, "VA", 1), ((701,), "VA", 1)),
    "VAr": ((INVERTER_MODELS, "VAr", 1), ((701,), "Var", 1)),
    # 101-103 give PF in percent, 701 as a ratio; telemetry always carries the ratio.
    "PF": ((INVERTER_MODELS, "PF", 0.01), ((701,), "PF", 1)),
    "Hz": ((INVERTER_MODELS, "Hz", 1), ((701,), "Hz", 1)),
    "A": ((INVERTER_MODELS, "A", 1), ((701,), "A", 1)),
    "AphA": ((INVERTER_MODELS, "AphA", 1), ((701,), "AL1", 1)),
    "AphB": ((INVERTER_MODELS, "AphB", 1), ((701,), "AL2", 1)),
    "AphC": ((INVERTER_MODELS, "AphC", 1), ((701,), "AL3", 1)),
    "V": ((INVERTER_MODELS, "PhVphA", 1), ((701,), "LNV", 1)),
    "PhVphA": ((INVERTER_MODELS, "PhVphA", 1), ((701,), "VL1", 1)),
    "PhVphB": ((INVERTER_MODELS, "PhVphB", 1), ((701,), "VL2", 1)),
    "PhVphC": ((INVERTER_MODELS, "PhVphC", 1), ((701,), "VL3", 1)),
    "PPVphAB": ((INVERTER_MODELS, "PPVphAB", 1), ((701,), "VL1L2", 1)),
    "PPVphBC": ((INVERTER_MODELS, "PPVphBC", 1), ((701,), "VL2L3", 1)),
    "PPVphCA": ((INVERTER_MODELS, "PPVphCA", 1), ((701,), "VL3L1", 1)),
    "WH": ((INVERTER_MODELS, "WH", 1), ((701,), "TotWhInj", 1)),
    "WHAbs": (((701,), "TotWhAbs", 1),),
    "DCA": ((INVERTER_MODELS, "DCA", 1),),
    "DCV": ((INVERTER_MODELS, "DCV", 1),),
    "DCW": ((INVERTER_MODELS, "DCW", 1),),
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

_COMM_ERRORS = (sunspec_client.SunSpecModbusClientError, sunspec_modbus.ModbusClientError, OSError)
_bus_locks: dict[str, threading.Lock] = {}
_bus_locks_guard = threading.Lock()


class FieldDeviceError(AgentError):
    """Base class for problems with a field device."""


class DeviceUnreachable(FieldDeviceError):
    """No usable answer: connection refused, timeout, or no SunSpec map at 40000/0/50000."""


class ControlError(FieldDeviceError):
    """A control could not be applied; the message says why."""


class ControlRejected(ControlError):
    """Refused without effect: value out of range, control not implemented, device said no."""


class ControlFailed(ControlError):
    """Tried and failed: the device stopped answering, or read back something else."""


@dataclass(frozen=True)
class DeviceIdentity:
    """What model 1 (common) says about the device, plus the models found."""

    make: str | None
    model: str | None
    serial: str | None
    firmware_version: str | None
    sunspec_models: tuple[int, ...]


@dataclass(frozen=True)
class Reading:
    values: dict[str, float | int]
    #: Union of the implemented event bitfields (101-103 Evt1, 701 Alrm); None if none is.
    event_bits: int | None


@dataclass(frozen=True)
class PowerLimitResult:
    requested_pct: float | None
    applied_pct: float | None
    enabled: bool
    sunspec_model: int
    details: dict[str, Any] = field(default_factory=dict)


class SunSpecDevice:
    """One configured SunSpec device. Not thread-safe by itself: call through the bus lock."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self._device: sunspec_client.SunSpecModbusClientDevice | None = None
        self.identity: DeviceIdentity | None = None
        if config.protocol == "sunspec-tcp":
            bus = f"tcp:{config.host}:{config.port}:{config.unit_id}"
        else:
            bus = f"rtu:{config.serial_port}"
        with _bus_locks_guard:
            self.lock = _bus_locks.setdefault(bus, threading.Lock())

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

    def set_active_power_limit(self, percent: float | None, revert_after_s: int | None = None) -> PowerLimitResult:
        """Limit active power to `percent` of WMax (None lifts the limit), then read it back.

        With `revert_after_s` the device's own reversion timer lifts the limit after that many
        seconds, so a gateway that dies mid-curtailment does not curtail forever.
        """
        if percent is not None and not 0 <= percent <= 100:
            raise ControlRejected(f"power limit must be 0..100 % of WMax (got {percent})")
        with self.lock:
            device = self._require_discovered()
            for model_id, pct_name, ena_name, revert_name in POWER_LIMIT_CONTROLS:
                if model_id in device.models:
                    model = device.models[model_id][0]
                    return self._apply_power_limit(model, pct_name, ena_name, revert_name, percent, revert_after_s)
        raise ControlRejected("device has no power limit control (SunSpec model 704 or 123)")

    def close(self) -> None:
        with self.lock:
            self._disconnect()

    # -- internals ------------------------------------------------------------------------

    def _apply_power_limit(
        self,
        model: Any,
        pct_name: str,
        ena_name: str,
        revert_name: str,
        percent: float | None,
        revert_after_s: int | None,
    ) -> PowerLimitResult:
        pct_point, ena_point = model.points[pct_name], model.points[ena_name]
        try:
            model.read()  # current scale factor
            if percent is not None:
                sf_point = model.points.get(pct_point.sf) if pct_point.sf else None
                if sf_point is not None and sf_point.value is None:
                    pct_point.value = round(percent)  # scale factor not implemented: whole percent
                else:
                    pct_point.cvalue = percent
            if revert_after_s is not None:
                model.points[revert_name].value = revert_after_s
            ena_point.value = 0 if percent is None else 1
            model.write()
        except sunspec_modbus.ModbusClientException as exc:
            raise ControlRejected(f"device refused {pct_name}={percent}: {_one_line(exc)}") from exc
        except sunspec_client.SunSpecModbusValueError as exc:
            raise ControlRejected(f"{pct_name}={percent} does not fit the device's register: {exc}") from exc
        except _COMM_ERRORS as exc:
            self._disconnect()
            raise ControlFailed(f"could not write {pct_name}: {_one_line(exc)}") from exc
        try:
            model.read()
        except _COMM_ERRORS as exc:
            self._disconnect()
            raise ControlFailed(f"wrote {pct_name} but could not read it back: {_one_line(exc)}") from exc
        applied, enabled = pct_point.cvalue, ena_point.value == 1
        resolution = 10.0 ** (pct_point.sf_value or 0)
        if enabled != (percent is not None) or (
            percent is not None and (applied is None or abs(applied - percent) > resolution / 2)
        ):
            raise ControlFailed(
                f"read back {pct_name}={applied} {ena_name}={ena_point.value} after writing "
                f"{percent}; the device did not apply the limit"
            )
        return PowerLimitResult(
            requested_pct=percent,
            applied_pct=applied,
            enabled=enabled,
            sunspec_model=model.model_id,
            details={pct_name: applied, ena_name: ena_point.value},
        )

    def _reading(self, present: dict[int, Any], scope: Iterable[int]) -> Reading:
        values: dict[str, float | int] = {}
        for name, sources in TELEMETRY_SOURCES.items():
            for model_ids, point_name, factor in sources:
                value = _first_value(present, scope, model_ids, point_name)
                if value is not None:
                    values[name] = round(value * factor, 6) if factor != 1 else value
                    break
        for model_id, point_name in self.config.points:
            point = present[model_id].points.get(point_name) if model_id in present else None
            if point is not None and _is_number(point.cvalue):
                values[f"{model_id}.{point_name}"] = point.cvalue
        # Models asked for by id beyond the telemetry ones report their top-level points raw.
        for model_id in sorted(set(scope) - TELEMETRY_MODELS):
            for point_name, point in present[model_id].points.items():
                if point_name not in ("ID", "L") and not point_name.endswith("_SF") and _is_number(point.cvalue):
                    values.setdefault(f"{model_id}.{point_name}", point.cvalue)
        bits: int | None = None
        for model_id, point_name in INVERTER_EVENT_POINTS:
            if model_id in scope:
                value = present[model_id].points[point_name].value
                if value is not None:
                    bits = (bits or 0) | int(value)
        return Reading(values=values, event_bits=bits)

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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = value.strip("\x00 ").strip()
    return cleaned or None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
