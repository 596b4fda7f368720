"""The one setpoint path: what a control asks of a field device, and what came back.

Every control that reaches a device goes through `FieldStack.apply_setpoint` with one of the
setpoint types below, whoever asks (a server command, IEEE 2030.5, DNP3, IEC 60870-5-104,
site logic, the commissioning CLI)::

    result = await stack.apply_setpoint("inv-1", PowerLimit(60.0, revert_after_s=900), source="dnp3")
    result.readback  # what the device holds now, read back after the write

The device writes the setpoint, reads it back and compares within the point's resolution;
`ControlRejected` means nothing was changed (bad value, control not implemented, the device
refused it), `ControlFailed` means it was tried and did not take (no answer, other value read
back). Each attempt is logged and reported as a `field.setpoint` event record. Which SunSpec
models carry which setpoint is in docs/field-devices.md section 7.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gridfleet_agent.field.errors import ControlRejected

MAX_PERCENT = 100

#: SunSpec DER curve/control models a `Curve` can address (IEEE 1547-2018 functions).
CURVE_MODELS: Mapping[int, str] = {
    705: "volt-var",
    706: "volt-watt",
    707: "low-voltage trip",
    708: "high-voltage trip",
    709: "low-frequency trip",
    710: "high-frequency trip",
    711: "frequency droop",
    712: "watt-var",
}


@dataclass(frozen=True)
class PowerLimit:
    """Cap active power at `percent` of WMax; None lifts the cap. The device's own reversion
    timer lifts it after `revert_after_s`, so a gateway that dies mid-curtailment does not
    curtail forever."""

    percent: float | None
    revert_after_s: int | None = None

    def __post_init__(self) -> None:
        if self.percent is not None and not (math.isfinite(self.percent) and 0 <= self.percent <= MAX_PERCENT):
            raise ControlRejected(f"power limit must be 0..{MAX_PERCENT} % of WMax (got {self.percent})")
        _check_revert(self.revert_after_s)


@dataclass(frozen=True)
class Connection:
    """Connect to (True) or disconnect from (False, cease to energize) the grid."""

    connected: bool
    revert_after_s: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.connected, bool):
            raise ControlRejected(f"connected must be true or false (got {self.connected!r})")
        _check_revert(self.revert_after_s)


@dataclass(frozen=True)
class PowerFactor:
    """Fixed power factor while injecting: `pf` 0 < pf <= 1, `absorbing_vars` True for an
    under-excited (reactive power absorbing) setting. None returns to unity/no fixed PF."""

    pf: float | None
    absorbing_vars: bool = False
    revert_after_s: int | None = None

    def __post_init__(self) -> None:
        if self.pf is not None and not (math.isfinite(self.pf) and 0 < self.pf <= 1):
            raise ControlRejected(f"power factor must be > 0 and <= 1 (got {self.pf})")
        _check_revert(self.revert_after_s)


@dataclass(frozen=True)
class Curve:
    """Load one curve (or control set, for 711) into a DER curve model 705-712 and enable it.

    `settings` uses the model's own point and group names in engineering units, as one entry of
    its repeating `Crv` group (`Ctl` for 711), e.g. for volt-var::

        Curve(705, {"DeptRef": 1, "Pt": [{"V": 92, "Var": 30}, {"V": 98, "Var": 0},
                                         {"V": 102, "Var": 0}, {"V": 108, "Var": -30}]})

    `ActPt` is filled in from the number of points given. `enabled=False` only disables the
    function (settings must then be empty).
    """

    model: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.model not in CURVE_MODELS:
            raise ControlRejected(f"curve model must be one of {', '.join(map(str, CURVE_MODELS))} (got {self.model})")
        if not isinstance(self.settings, Mapping):
            raise ControlRejected("curve settings must be an object of point names")
        if self.enabled and not self.settings:
            raise ControlRejected(f"model {self.model} ({CURVE_MODELS[self.model]}): settings are required")


@dataclass(frozen=True)
class PointValue:
    """Write one writable point by name: `"<model>.<point>"` on a SunSpec device, a template's
    setpoint name on a template device (e.g. a contactor's `"close"`)."""

    point: str
    value: float | int

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float) or not math.isfinite(self.value):
            raise ControlRejected(f"{self.point}: value must be a number (got {self.value!r})")


Setpoint = PowerLimit | Connection | PowerFactor | Curve | PointValue

SETPOINT_KINDS: Mapping[type, str] = {
    PowerLimit: "power_limit",
    Connection: "connection",
    PowerFactor: "power_factor",
    Curve: "curve",
    PointValue: "point",
}


def describe(setpoint: Setpoint) -> dict[str, Any]:
    """A setpoint as plain JSON data, for logs and reports."""
    data: dict[str, Any] = {"kind": SETPOINT_KINDS[type(setpoint)]}
    for name in setpoint.__dataclass_fields__:
        value = getattr(setpoint, name)
        data[name] = dict(value) if isinstance(value, Mapping) else value
    return data


@dataclass(frozen=True)
class SetpointResult:
    """A setpoint the device took: where it went and what was read back afterwards."""

    device: str
    setpoint: Setpoint
    #: SunSpec model written (704, 123, 703, 705...), None for a template device.
    sunspec_model: int | None
    #: The points written, as read back after the write (engineering units).
    readback: dict[str, Any]

    @property
    def message(self) -> str:
        where = f"model {self.sunspec_model}" if self.sunspec_model is not None else "the device"
        shown = ", ".join(f"{k}={v}" for k, v in _flat(self.readback))
        return f"{shown} written to {where} and read back"

    def as_dict(self) -> dict[str, Any]:
        return {"setpoint": describe(self.setpoint), "sunspec_model": self.sunspec_model, "readback": self.readback}


#: Command name (uplink section 2.6, and the commissioning CLI) -> setpoint type.
COMMANDS = ("set_power_limit", "set_connection", "set_power_factor", "set_curve", "set_point")


# One branch per command and argument, each with its own refusal message.
def setpoint_from_command(name: str, args: Mapping[str, Any]) -> tuple[str, Setpoint]:  # noqa: C901, PLR0912
    """Parse a command's args into (device id, setpoint); ControlRejected names the bad field."""
    if name not in COMMANDS:
        raise ControlRejected(f"the field stack does not implement command {name!r}")
    device = args.get("device")
    if not isinstance(device, str) or not device:
        raise ControlRejected("args.device: required, the field device key")
    revert = args.get("revert_after_s")
    if revert is not None and (isinstance(revert, bool) or not isinstance(revert, int) or revert < 0):
        raise ControlRejected("args.revert_after_s: a whole number of seconds >= 0")
    match name:
        case "set_power_limit":
            pct = args.get("limit_pct")
            if pct is not None and (isinstance(pct, bool) or not isinstance(pct, int | float)):
                raise ControlRejected("args.limit_pct: required, a number 0..100 (null lifts the limit)")
            if "limit_pct" not in args:
                raise ControlRejected("args.limit_pct: required, a number 0..100 (null lifts the limit)")
            return device, PowerLimit(None if pct is None else float(pct), revert)
        case "set_connection":
            connected = args.get("connected")
            if not isinstance(connected, bool):
                raise ControlRejected("args.connected: required, true (connect) or false (disconnect)")
            return device, Connection(connected, revert)
        case "set_power_factor":
            pf, absorbing = args.get("pf"), args.get("absorbing_vars", False)
            if "pf" not in args or (pf is not None and (isinstance(pf, bool) or not isinstance(pf, int | float))):
                raise ControlRejected("args.pf: required, a number > 0 and <= 1 (null: no fixed power factor)")
            if not isinstance(absorbing, bool):
                raise ControlRejected("args.absorbing_vars: true or false")
            return device, PowerFactor(None if pf is None else float(pf), absorbing, revert)
        case "set_curve":
            model, settings, enabled = args.get("model"), args.get("settings", {}), args.get("enabled", True)
            if isinstance(model, bool) or not isinstance(model, int):
                raise ControlRejected("args.model: required, a SunSpec curve model id 705..712")
            if not isinstance(settings, Mapping) or not isinstance(enabled, bool):
                raise ControlRejected("args.settings: an object; args.enabled: true or false")
            return device, Curve(model, settings, enabled)
        case "set_point":
            point, value = args.get("point"), args.get("value")
            if not isinstance(point, str) or not point:
                raise ControlRejected("args.point: required, '<model>.<point>' or a template setpoint name")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlRejected("args.value: required, a number")
            return device, PointValue(point, value)
    raise AssertionError(f"command {name!r} is in COMMANDS but not parsed")


def _check_revert(revert_after_s: int | None) -> None:
    if revert_after_s is not None and (
        isinstance(revert_after_s, bool) or not isinstance(revert_after_s, int) or revert_after_s < 0
    ):
        raise ControlRejected(f"revert_after_s must be a whole number of seconds >= 0 (got {revert_after_s!r})")


def _flat(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            out += _flat(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                out += _flat(item, f"{prefix}{key}[{index + 1}].") if isinstance(item, Mapping) else []
        else:
            out.append((f"{prefix}{key}", value))
    return out
