"""A SunSpec Modbus (TCP or RTU) device simulator for tests, `make demo` and the fleet simulator.

The register map is laid out from pysunspec2's own model definitions, so every point sits
where a real SunSpec device puts it: 'SunS' at 40000, then `[model id, length, registers...]`
for each model, then the end marker `0xFFFF, 0`. Values are set in engineering units; the
scale factors held in the map are applied on the way in and out.

The Modbus side is pymodbus 3.16's SimDevice/SimData server (the 3.16 API: the older
ModbusDeviceContext datastore is deprecated there). SimData addresses are the on-wire
addresses, so the block starts at exactly 40000 with no +1 offset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, cast

from gridfleet_agent.errors import AgentError
from gridfleet_agent.field.errors import ControlFailed
from gridfleet_agent.field.events import EVENT_SOURCES
from gridfleet_agent.field.setpoints import Setpoint, SetpointResult
from gridfleet_agent.field.stack import CommandOutcome, FieldStack, Sink
from gridfleet_agent.field.sunspec import (
    ADOPT_COMPLETED,
    ADOPT_FAILED,
    CONNECTION_CONTROLS,
    DER_MEASURE_MODEL,
    INVERTER_MODELS,
    POWER_LIMIT_CONTROLS,
)
from gridfleet_agent.field.templates import TABLES, Register, Template, decode, encode
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from sunspec2 import device as sunspec_device

logger = logging.getLogger(__name__)

BASE_ADDRESS = 40000
SUNS_MARKER = b"SunS"
EVENT_BITS = 32  # the event bitfields (Evt1, Alrm) are 32 bits wide
END_MARKER = (0xFFFF, 0)

#: A three-phase inverter with immediate controls (123) and the IEEE 1547 DER models:
#: measurements (701), enter service (703), AC controls (704), volt-var (705), freq-droop (711).
DEFAULT_MODELS: tuple[int, ...] = (1, 103, 123, 701, 703, 704, 705, 711)

#: Scale factors written into the map (by point name, whatever the model). Chosen so that a
#: 10 kW three-phase inverter's values fit the 16-bit points with useful resolution.
DEFAULT_SCALE_FACTORS: Mapping[str, int] = {
    "A_SF": -2,
    "V_SF": -1,
    "W_SF": 0,
    "Hz_SF": -2,
    "VA_SF": 0,
    "VAr_SF": 0,
    "Var_SF": 0,
    "PF_SF": -2,
    "WH_SF": 0,
    "DCA_SF": -2,
    "DCV_SF": -1,
    "DCW_SF": 0,
    "Tmp_SF": -1,
    "TotWh_SF": 0,
    "TotVarh_SF": 0,
    "WMaxLimPct_SF": -1,
    "OutPFSet_SF": -3,
    "VArPct_SF": 0,
    "WSet_SF": 0,
    "WSetPct_SF": -1,
    "VarSet_SF": 0,
    "VarSetPct_SF": -1,
    "DeptRef_SF": 0,
    "RspTms_SF": 0,
    "Tms_SF": -2,
    "Db_SF": -3,
    "K_SF": -3,
    "Pct_SF": 0,
    "AHRtg_SF": 0,
    "WHRtg_SF": 0,
    "WChaDisChaMax_SF": 0,
    "SoC_SF": 0,
    "SoH_SF": 0,
    "DoD_SF": 0,
    "CellV_SF": -3,
    "AMax_SF": 0,
    "DCWH_SF": 0,
    "TotVAh_SF": 0,
    "TotVArh_SF": 0,
    "VAR_SF": 0,
}

#: Entries of each repeating group, by the model point that counts them (curves, control
#: sets, points per curve, DC ports, battery strings).
GROUP_COUNTS: Mapping[str, int] = {"NCrv": 3, "NCrvSet": 2, "NPt": 4, "NCtl": 3, "NPrt": 2, "NStr": 2}

#: Engineering values of a healthy inverter producing 5 kW. Points not listed read as
#: 'not implemented'. Model 101-103 PF is in percent, model 701 PF is a ratio.
DEFAULT_VALUES: Mapping[int, Mapping[str, Any]] = {
    1: {"Mn": "Gridfleet", "Md": "SIM-3P-10K", "Opt": "sim", "Vr": "1.4.2", "SN": "SIM0001", "DA": 1},
    101: {
        "A": 21.7,
        "AphA": 21.7,
        "PhVphA": 230.0,
        "W": 5000,
        "Hz": 50.0,
        "VA": 5000,
        "VAr": 0,
        "PF": 100.0,
        "WH": 123456,
        "TmpCab": 35.0,
        "St": 4,
        "Evt1": 0,
        "Evt2": 0,
    },
    102: {
        "A": 21.7,
        "AphA": 10.85,
        "AphB": 10.85,
        "PhVphA": 230.0,
        "PhVphB": 230.0,
        "W": 5000,
        "Hz": 50.0,
        "VA": 5000,
        "VAr": 0,
        "PF": 100.0,
        "WH": 123456,
        "TmpCab": 35.0,
        "St": 4,
        "Evt1": 0,
        "Evt2": 0,
    },
    103: {
        "A": 21.7,
        "AphA": 7.23,
        "AphB": 7.23,
        "AphC": 7.24,
        "PhVphA": 230.0,
        "PhVphB": 230.0,
        "PhVphC": 230.0,
        "PPVphAB": 398.4,
        "PPVphBC": 398.4,
        "PPVphCA": 398.4,
        "W": 5000,
        "Hz": 50.0,
        "VA": 5000,
        "VAr": 0,
        "PF": 100.0,
        "WH": 123456,
        "DCA": 12.5,
        "DCV": 420.0,
        "DCW": 5250,
        "TmpCab": 35.0,
        "TmpSnk": 41.5,
        "St": 4,
        "Evt1": 0,
        "Evt2": 0,
    },
    123: {"Conn": 1, "WMaxLimPct": 100.0, "WMaxLim_Ena": 0},
    701: {
        "ACType": 2,
        "St": 1,
        "InvSt": 3,
        "ConnSt": 1,
        "Alrm": 0,
        "W": 5000,
        "VA": 5000,
        "Var": 0,
        "PF": 1.0,
        "A": 21.7,
        "LLV": 398.4,
        "LNV": 230.0,
        "Hz": 50.0,
        "TotWhInj": 123456,
        "TotWhAbs": 0,
        "TmpAmb": 22.0,
        "TmpCab": 35.0,
    },
    703: {"ES": 1},
    704: {"WMaxLimPctEna": 0, "WMaxLimPct": 100.0, "PFWInjEna": 0},
}

#: What each kind of simulated device serves: (models, values over DEFAULT_VALUES).
#: The meter is a three-phase revenue meter at the point of connection (model 203; W > 0 is
#: import); the battery a 13.5 kWh lithium-ion store with its DC port (713, 714, 802).
PRESETS: Mapping[str, tuple[tuple[int, ...], Mapping[int, Mapping[str, Any]]]] = {
    "inverter": (DEFAULT_MODELS, {}),
    "meter": (
        (1, 203),
        {
            1: {"Md": "SIM-METER-3P", "SN": "SIMM0001"},
            203: {
                "A": 8.7,
                "AphA": 2.9,
                "AphB": 2.9,
                "AphC": 2.9,
                "PhV": 230.0,
                "PhVphA": 230.0,
                "PhVphB": 230.0,
                "PhVphC": 230.0,
                "PPV": 398.4,
                "Hz": 50.0,
                "W": 2000,
                "WphA": 667,
                "WphB": 667,
                "WphC": 666,
                "VA": 2000,
                "VAR": 0,
                "PF": 100.0,
                "TotWhExp": 350000,
                "TotWhImp": 910000,
                "Evt": 0,
            },
        },
    ),
    "battery": (
        (1, 713, 714, 802),
        {
            1: {"Md": "SIM-BAT-13K5", "SN": "SIMB0001"},
            713: {"WHRtg": 13500, "WHAvail": 8100, "SoC": 60, "SoH": 98, "Sta": 0},
            714: {"DCA": 0.0, "DCW": 0, "DCWhInj": 1200000, "DCWhAbs": 1350000, "PrtAlrms": 0},
            802: {
                "AHRtg": 280,
                "WHRtg": 13500,
                "WChaRteMax": 5000,
                "WDisChaRteMax": 5000,
                "SoCMax": 100,
                "SoCMin": 5,
                "SoC": 60,
                "SoH": 98,
                "ChaSt": 6,
                "State": 3,
                "Typ": 4,
                "Evt1": 0,
                "Evt2": 0,
                "EvtVnd1": 0,
                "EvtVnd2": 0,
                "V": 51.2,
                "A": 0.0,
                "W": 0,
            },
        },
    ),
}

#: Points whose written value must lie in `power_limit_range`, else the write is refused with
#: ILLEGAL DATA VALUE, as a device refuses a setpoint it cannot honour.
POWER_LIMIT_POINTS = frozenset({"WMaxLimPct", "WMaxLimPctRvrt"})


class SimulatorError(AgentError):
    """A value or model the simulated device does not have."""


class ServedDevice:
    """A pymodbus 3.16 simulated device's server lifecycle: serve, stop, `async with`."""

    host: str
    port: int
    _server: ModbusTcpServer | ModbusSerialServer | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def _serve_tcp(self, device: SimDevice) -> None:
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        if self.port == 0:  # port 0: the system picked a free one
            self.port = cast(asyncio.Server, self._server.transport).sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class SunSpecSimulator(ServedDevice):
    """One simulated SunSpec device (one Modbus unit id) served over Modbus TCP, or Modbus
    RTU when `serial_port` is given (e.g. one end of a `socat` pty pair).

    Use as an async context manager inside a running event loop::

        async with SunSpecSimulator(port=0) as sim:   # port 0: pick a free port
            sim.set(103, "W", 4200)
            sim.raise_event(7)                        # over-temperature
            ... connect to ("127.0.0.1", sim.port)
    """

    def __init__(
        self,
        *,
        models: Sequence[int] = DEFAULT_MODELS,
        values: Mapping[int, Mapping[str, Any]] | None = None,
        unit_id: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        power_limit_range: tuple[float, float] = (0.0, 100.0),
        serial_port: str | None = None,
        baudrate: int = 9600,
        rated_w: float = 10_000.0,
    ) -> None:
        if not models or models[0] != 1:
            raise SimulatorError("a SunSpec map starts with model 1 (common)")
        self.unit_id = unit_id
        self.host = host
        self.port = port
        self.power_limit_range = power_limit_range
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.rated_w = rated_w
        self._available_w: float | None = None  # None: W stays what was set
        self._models: dict[int, sunspec_device.Model] = {}
        self._offsets: dict[int, int] = {}  # model id -> register offset of its ID point from BASE_ADDRESS
        offset = len(SUNS_MARKER) // 2
        for model_id in models:
            model = _new_model(model_id)
            if model.error_info:
                raise SimulatorError(f"model {model_id}: {model.error_info.strip()}")
            self._models[model_id] = model
            self._offsets[model_id] = offset
            offset += model.len
        self._registers: list[int] = [0] * (offset + len(END_MARKER))
        self._registers[0:2] = _bytes_to_registers(SUNS_MARKER)
        self._registers[offset:] = END_MARKER
        for model_id, model in self._models.items():
            for name in model.points:
                if name in DEFAULT_SCALE_FACTORS:
                    model.points[name].set_value(DEFAULT_SCALE_FACTORS[name])
            # Slot 1 of a curve model is the active curve: read-only to clients, who load
            # another slot and ask for its adoption (AdptCrvReq).
            for index, slot in enumerate(_curve_slots(model), start=1):
                slot.points["ReadOnly"].set_value(1 if index == 1 else 0)
            if _curve_slots(model):
                model.points["Ena"].set_value(0)
                model.points[_adopt_points(model)[1]].set_value(ADOPT_COMPLETED)
            self.update(model_id, DEFAULT_VALUES.get(model_id, {}))
        for model_id, model_values in (values or {}).items():
            self.update(model_id, model_values)
        self._responding = asyncio.Event()
        self._responding.set()
        self._ignoring_writes = False

    @classmethod
    def preset(
        cls, kind: str, *, values: Mapping[int, Mapping[str, Any]] | None = None, **kwargs: Any
    ) -> SunSpecSimulator:
        """A simulated inverter, meter or battery (PRESETS), `values` set over its defaults."""
        try:
            models, defaults = PRESETS[kind]
        except KeyError:
            raise SimulatorError(f"no preset {kind!r} (have {', '.join(PRESETS)})") from None
        models = kwargs.pop("models", models)
        merged = {m: {**defaults.get(m, {}), **(values or {}).get(m, {})} for m in models}
        return cls(models=models, values=merged, **kwargs)

    # -- values ---------------------------------------------------------------------------

    @property
    def model_ids(self) -> list[int]:
        return list(self._models)

    def set(self, model_id: int, point: str, value: Any) -> None:
        """Set a point in engineering units (None makes it read as 'not implemented')."""
        self.update(model_id, {point: value})

    def update(self, model_id: int, values: Mapping[str, Any]) -> None:
        model = self._model(model_id)
        # Scale factors first: the other points are encoded with them.
        for name in sorted(values, key=lambda n: not n.endswith("_SF")):
            point = self._point(model, name)
            value = values[name]
            point.set_value(value, computed=value is not None and not name.endswith("_SF"))
        self._render(model_id)

    def get(self, model_id: int, point: str) -> Any:
        """A point's current value in engineering units, as a client would read it."""
        return self._point(self._model(model_id), point).cvalue

    def register(self, address: int) -> int:
        """The raw 16-bit register at a Modbus address (e.g. 40000)."""
        return self._registers[address - BASE_ADDRESS]

    def model_address(self, model_id: int) -> int:
        """The Modbus address of a model's ID register."""
        self._model(model_id)
        return BASE_ADDRESS + self._offsets[model_id]

    # -- plant ----------------------------------------------------------------------------

    def set_available_power(self, watts: float) -> None:
        """Behave like a PV plant from now on: output follows the available power, capped at
        `rated_w` x the enabled power limit (704 or 123), with St/InvSt showing 'throttled'."""
        self._available_w = max(0.0, watts)
        self._apply_plant()

    def connected(self) -> bool:
        """False once a client disconnected the device (703 ES or 123 Conn = 0)."""
        for model_id, point, _ in CONNECTION_CONTROLS:
            if model_id in self._models:
                return bool(self.get(model_id, point) != 0)
        return True

    def curve(self, model_id: int, index: int = 1) -> dict[str, Any]:
        """One entry of a curve model's repeating group (1: the active one), engineering units."""
        slots = _curve_slots(self._model(model_id))
        if not 1 <= index <= len(slots):
            raise SimulatorError(f"model {model_id} has {len(slots)} curves, not {index}")
        return cast(dict[str, Any], slots[index - 1].get_dict(computed=True))

    def power_limit_pct(self) -> float | None:
        """The enabled active power limit in percent, None when no limit is enabled."""
        for model_id, pct_name, ena_name, _ in POWER_LIMIT_CONTROLS:
            if model_id in self._models and self.get(model_id, ena_name) == 1:
                return float(self.get(model_id, pct_name))
        return None

    def _apply_plant(self) -> None:
        if self._available_w is None:
            return
        limit = self.power_limit_pct()
        cap = self.rated_w if limit is None else self.rated_w * limit / 100
        if not self.connected():
            cap = 0.0
        watts = round(min(self._available_w, cap))
        throttled = watts < round(self._available_w)
        for model_id in INVERTER_MODELS:
            if model_id in self._models:
                volts = self.get(model_id, "PhVphA") or 230.0
                state = 5 if throttled else 4 if watts else 2  # THROTTLED, MPPT, SLEEPING
                self.update(model_id, {"W": watts, "VA": watts, "A": round(watts / volts, 2), "St": state})
        if DER_MEASURE_MODEL in self._models:
            volts = self.get(DER_MEASURE_MODEL, "LNV") or 230.0
            state = 4 if throttled else 3 if watts else 1  # THROTTLED, RUNNING, SLEEPING
            conn = int(self.connected())
            self.update(
                DER_MEASURE_MODEL,
                {"W": watts, "VA": watts, "A": round(watts / volts, 2), "InvSt": state, "ConnSt": conn},
            )

    # -- faults ---------------------------------------------------------------------------

    def raise_event(self, bit: int, point: str | None = None) -> None:
        """Set an event bit in every standard event bitfield the map has (Evt1 in 101-103,
        Alrm in 701, Evt in 201-204, Evt1 in 802), or only in `point` ("103.EvtVnd1")."""
        self._change_event_bit(bit, on=True, point=point)

    def clear_event(self, bit: int, point: str | None = None) -> None:
        self._change_event_bit(bit, on=False, point=point)

    def stop_responding(self) -> None:
        """Keep connections open but answer nothing, like a hung device (requests time out)."""
        self._responding.clear()

    def resume_responding(self) -> None:
        self._responding.set()

    def ignore_writes(self, ignore: bool = True) -> None:
        """Acknowledge writes but keep the old values, like a device in local/manual mode."""
        self._ignoring_writes = ignore

    # -- server ---------------------------------------------------------------------------

    async def start(self) -> None:
        device = SimDevice(
            id=self.unit_id,
            simdata=[SimData(BASE_ADDRESS, values=list(self._registers), datatype=DataType.REGISTERS)],
            action=self._on_request,
        )
        if self.serial_port is not None:
            self._server = ModbusSerialServer(device, port=self.serial_port, baudrate=self.baudrate)
            await self._server.serve_forever(background=True)
            logger.info("SunSpec simulator on serial %s unit %s", self.serial_port, self.unit_id)
            return
        await self._serve_tcp(device)
        logger.info("SunSpec simulator listening on %s:%s unit %s", self.host, self.port, self.unit_id)

    @property
    def endpoint(self) -> str:
        where = self.serial_port if self.serial_port is not None else f"{self.host}:{self.port}"
        return f"{where} unit {self.unit_id}"

    async def stop(self) -> None:
        self._responding.set()  # release requests held by stop_responding()
        await super().stop()

    async def _on_request(  # noqa: PLR0917 (pymodbus calls it with positional arguments)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before every access; our register list is the source of truth
        (copied over pymodbus' own copy each time, which also undoes writes we ignored)."""
        await self._responding.wait()
        if set_values is not None and not self._ignoring_writes:
            refusal = self._write(address - BASE_ADDRESS, [int(v) for v in set_values])
            if refusal is not None:
                code, reason = refusal
                logger.info("simulator refused write at %s: %s", address, reason)
                return code
        current_registers[: len(self._registers)] = self._registers
        return None

    # -- internals ------------------------------------------------------------------------

    def _write(self, offset: int, registers: list[int]) -> tuple[ExcCodes, str] | None:
        """Apply a client write to the map, or return the exception code and why it is refused."""
        previous = list(self._registers)
        candidate = list(self._registers)
        candidate[offset : offset + len(registers)] = registers
        touched = [
            model_id
            for model_id, start in self._offsets.items()
            if start < offset + len(registers) and offset < start + self._models[model_id].len
        ]
        decoded: dict[int, sunspec_device.Model] = {}
        for model_id in touched:
            model = _new_model(model_id)
            start = self._offsets[model_id]
            model.set_mb(_registers_to_bytes(candidate[start : start + model.len]))
            first, end = offset - start, offset - start + len(registers)  # model-relative
            for name, point in model.points.items():
                if point.offset < end and first < point.offset + point.len and point.pdef.get("access") != "RW":
                    return ExcCodes.ILLEGAL_ADDRESS, f"{model_id}.{name} is read-only"
            for name in POWER_LIMIT_POINTS & model.points.keys():
                value = model.points[name].cvalue
                low, high = self.power_limit_range
                if value is not None and not low <= value <= high:
                    return ExcCodes.ILLEGAL_VALUE, f"{name}={value} outside {low}..{high}"
            decoded[model_id] = model
        self._registers = candidate
        for model_id in touched:
            start = self._offsets[model_id]
            self._models[model_id].set_mb(_registers_to_bytes(candidate[start : start + decoded[model_id].len]))
            if _curve_slots(self._models[model_id]):
                self._adopt(model_id, before=previous)
        self._apply_plant()  # a new power limit changes the output
        return None

    def _adopt(self, model_id: int, *, before: list[int]) -> None:
        """A written AdptCrvReq/AdptCtlReq = n copies slot n into the active slot 1 when its
        points are in range (ActPt 1..NPt), answering COMPLETED, else FAILED."""
        model = self._models[model_id]
        request, result = _adopt_points(model)
        address = self._offsets[model_id] + model.points[request].offset
        if self._registers[address] == before[address]:
            return
        slots = _curve_slots(model)
        index = model.points[request].value
        source = slots[index - 1] if isinstance(index, int) and 1 <= index <= len(slots) else None
        ok = source is not None and all(
            g.points["ActPt"].value is not None and 1 <= g.points["ActPt"].value <= len(g.groups["Pt"])
            for g in [source, *[v for v in source.groups.values() if not isinstance(v, list)]]
            if "ActPt" in g.points
        )
        if ok and source is not None and index != 1:
            entry = source.get_dict()
            entry.pop("ReadOnly", None)
            slots[0].set_dict(entry)
        model.points[result].set_value(ADOPT_COMPLETED if ok else ADOPT_FAILED)
        self._render(model_id)

    def _change_event_bit(self, bit: int, *, on: bool, point: str | None) -> None:
        if point is not None:
            model_text, _, name = point.partition(".")
            targets = [(_model_id(model_text), name)]
        else:
            targets = [ref for source in EVENT_SOURCES for ref in source.points if ref[0] in self._models]
        if not targets:
            raise SimulatorError("the map has no event bitfield (101-103 Evt1, 701 Alrm, 201-204 Evt, 802 Evt1)")
        for model_id, point_name in targets:
            current = self._point(self._model(model_id), point_name).value or 0
            updated = current | (1 << bit) if on else current & ~(1 << bit)
            self.set(model_id, point_name, updated)

    def _model(self, model_id: int) -> sunspec_device.Model:
        try:
            return self._models[model_id]
        except KeyError:
            raise SimulatorError(f"model {model_id} is not in this map (have {self.model_ids})") from None

    @staticmethod
    def _point(model: sunspec_device.Model, name: str) -> sunspec_device.Point:
        try:
            return model.points[name]
        except KeyError:
            raise SimulatorError(f"model {model.model_id} has no point {name!r}") from None

    def _render(self, model_id: int) -> None:
        start = self._offsets[model_id]
        regs = _bytes_to_registers(self._models[model_id].get_mb())
        self._registers[start : start + len(regs)] = regs


def _new_model(model_id: int) -> sunspec_device.Model:
    """A model with its repeating groups allocated (GROUP_COUNTS entries each)."""
    counts = {
        name: count
        for name, count in GROUP_COUNTS.items()
        if name in {p["name"] for p in sunspec_device.get_model_def(model_id)["group"]["points"]}
    }
    return sunspec_device.Model(model_id=model_id, data=counts or None)


def _curve_slots(model: sunspec_device.Group) -> list[sunspec_device.Group]:
    """The curve (Crv) or control-set (Ctl) entries of a 705-712 model, [] for other models."""
    slots = model.groups.get("Crv") or model.groups.get("Ctl")
    return slots if isinstance(slots, list) and model.points.get("Ena") is not None else []


def _adopt_points(model: sunspec_device.Group) -> tuple[str, str]:
    return ("AdptCtlReq", "AdptCtlRslt") if "Ctl" in model.groups else ("AdptCrvReq", "AdptCrvRslt")


def _bytes_to_registers(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _registers_to_bytes(registers: Sequence[int]) -> bytes:
    return b"".join(r.to_bytes(2, "big") for r in registers)


CONSOLE_HELP = """commands:
  set <model> <point> <value>   set a point in engineering units (e.g. set 103 W 4200, set 1 SN ABC-1)
  get <model> <point>           show a point
  event <bit> on|off            set or clear an event bit (Evt1 / Alrm), e.g. event 7 on
  silent | resume               stop answering requests (comm loss) / answer again
  ignore-writes on|off          acknowledge writes without applying them
  sun <watts>                   plant mode: available power in W
  help"""


def console_command(sim: SunSpecSimulator, line: str) -> str:
    """Apply one console line to the simulator; returns what changed. Raises SimulatorError."""
    match line.split():
        case ["set", model, point, value]:
            sim.set(_model_id(model), point, _console_value(value))
            return f"{model}.{point} = {sim.get(_model_id(model), point)}"
        case ["get", model, point]:
            return f"{model}.{point} = {sim.get(_model_id(model), point)}"
        case ["event", bit, "on" | "off" as state] if bit.isdigit() and int(bit) < EVENT_BITS:
            (sim.raise_event if state == "on" else sim.clear_event)(int(bit))
            return f"event bit {bit} {state}"
        case ["silent"]:
            sim.stop_responding()
            return "not answering"
        case ["resume"]:
            sim.resume_responding()
            return "answering"
        case ["ignore-writes", "on" | "off" as state]:
            sim.ignore_writes(state == "on")
            return f"ignore-writes {state}"
        case ["sun", watts]:
            sim.set_available_power(float(watts))
            return f"available power {float(watts)} W"
        case ["help"] | []:
            return CONSOLE_HELP
    raise SimulatorError(f"not understood: {line.strip()!r}\n{CONSOLE_HELP}")


def _model_id(text: str) -> int:
    if not text.isdigit():
        raise SimulatorError(f"a model id is a number, not {text!r}")
    return int(text)


def _console_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


async def console(sim: SunSpecSimulator) -> None:
    """Read console commands from stdin until it closes; the device keeps serving after that."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        try:
            print(console_command(sim, line), flush=True)
        except (SimulatorError, ValueError) as exc:
            print(f"error: {exc}", flush=True)


SUNRISE_UTC_S = 6 * 3600


def sun_fraction(now: float, day_seconds: float) -> float:
    """Daylight bell 0..1 over the first half of each day; with 86400 s days that is 06:00-18:00 UTC."""
    phase = ((now - SUNRISE_UTC_S) % day_seconds) / day_seconds
    return max(0.0, math.sin(2 * math.pi * phase))


async def follow_the_sun(sim: SunSpecSimulator, *, day_seconds: float = 86400.0, step: float = 1.0) -> None:
    """Drive the simulator's available power along the sun, forever."""
    while True:
        sim.set_available_power(sim.rated_w * sun_fraction(time.time(), day_seconds))
        await asyncio.sleep(step)


class TemplateSimulator(ServedDevice):
    """A Modbus TCP device laid out from a device template (templates.py): each point, alarm
    word and setpoint at its register, encoded as the template says, served by pymodbus 3.16
    with the four tables apart (coils, discrete inputs, holding, input registers)::

        async with TemplateSimulator(template, values={"W": -3200.0}, port=0) as meter:
            meter.set("W", 1500.0)      # engineering units
            meter.set_alarm_bit(0, 3)   # bit 3 of the template's first alarm word
    """

    def __init__(
        self,
        template: Template,
        *,
        values: Mapping[str, float] | None = None,
        unit_id: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.template = template
        self.unit_id, self.host, self.port = unit_id, host, port
        specs: list[Register] = [*template.points, *template.alarms, *template.setpoints]
        size = {t: max((s.register + s.count for s in specs if s.table == t), default=0) + 1 for t in TABLES}
        #: Registers of the holding/input tables; one int (0/1) per coil/discrete input.
        self.tables: dict[str, list[int]] = {t: [0] * size[t] for t in TABLES}
        for name, value in (values or {}).items():
            self.set(name, value)

    def _spec(self, name: str) -> Register:
        spec = next((p for p in self.template.points if p.name == name), None) or self.template.setpoint(name)
        if spec is None:
            raise SimulatorError(f"template {self.template.name} has no point {name!r}")
        return spec

    def set(self, name: str, value: float) -> None:
        spec = self._spec(name)
        registers = encode(spec, value, self.template.word_order)
        self.tables[spec.table][spec.register : spec.register + len(registers)] = registers

    def get(self, name: str) -> float | int:
        spec = self._spec(name)
        return decode(
            spec, self.tables[spec.table][spec.register : spec.register + spec.count], self.template.word_order
        )

    def set_alarm_bit(self, index: int, bit: int, on: bool = True) -> None:
        alarm = self.template.alarms[index]
        words = self.tables[alarm.table][alarm.register : alarm.register + alarm.count]
        current = int(decode(alarm, words, self.template.word_order))
        updated = current | (1 << bit) if on else current & ~(1 << bit)
        self.tables[alarm.table][alarm.register : alarm.register + alarm.count] = encode(
            alarm, updated, self.template.word_order
        )

    async def start(self) -> None:
        def bits(table: str) -> list[SimData]:
            return [SimData(0, values=[0] * (len(self.tables[table]) // 16 + 1), datatype=DataType.BITS)]

        def registers(table: str) -> list[SimData]:
            return [SimData(0, values=list(self.tables[table]), datatype=DataType.REGISTERS)]

        device = SimDevice(
            id=self.unit_id,
            simdata=(bits("coil"), bits("discrete"), registers("holding"), registers("input")),
            action=self._on_request,
        )
        await self._serve_tcp(device)

    async def _on_request(  # noqa: PLR0917 (pymodbus calls it with positional arguments)
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Our tables are the source of truth: writes land in them, then pymodbus' copy of the
        table is refreshed from them (bits packed 16 to a register, lowest bit first)."""
        table = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding"}.get(
            function_code, "input"
        )
        data = self.tables[table]
        if set_values is not None:
            data[address : address + len(set_values)] = [int(v) for v in set_values]
        if table in ("coil", "discrete"):
            packed = [
                sum(bit << i for i, bit in enumerate(data[r * 16 : r * 16 + 16])) for r in range(len(current_registers))
            ]
            current_registers[:] = packed
        else:
            current_registers[: len(data)] = data
        return None


class SimulatedSite:
    """A real FieldStack polling a simulated DER site: an inverter (plant mode, following the
    sun), the revenue meter at the point of connection and a battery, each its own SunSpec
    Modbus TCP device. The meter measures the site load minus what the inverter and battery
    deliver (W > 0 import, W < 0 export), so curtailing the inverter shows at the meter.
    Behind the interface the agent daemon expects of its field stack (start, stop,
    field_devices, execute); `extra` merges more field configuration (site logic rules...)."""

    def __init__(
        self,
        sink: Sink,
        *,
        name: str,
        poll_interval: float = 10.0,
        day_seconds: float = 86400.0,
        rated_w: float = 10_000.0,
        load_w: float = 3_000.0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.ids = {"inverter": f"{name}-INV1", "meter": f"{name}-MTR1", "battery": f"{name}-BAT1"}
        self.simulator = SunSpecSimulator(values={1: {"SN": self.ids["inverter"]}}, rated_w=rated_w)
        self.meter = SunSpecSimulator.preset("meter", values={1: {"SN": self.ids["meter"]}})
        self.battery = SunSpecSimulator.preset("battery", values={1: {"SN": self.ids["battery"]}})
        self.load_w = load_w
        self.poll_interval = poll_interval
        self.day_seconds = day_seconds
        self.extra = dict(extra or {})
        self._sink = sink
        self.stack: FieldStack | None = None
        self._sun: asyncio.Task[None] | None = None

    @property
    def device_id(self) -> str:
        return self.ids["inverter"]

    async def start(self) -> None:
        sims = {"inverter": self.simulator, "meter": self.meter, "battery": self.battery}
        for sim in sims.values():
            await sim.start()
        self._step()
        self._sun = asyncio.create_task(self._follow_the_sun())
        devices = [
            {
                "id": self.ids[kind],
                "kind": kind,
                "protocol": "sunspec-tcp",
                "host": sim.host,
                "port": sim.port,
                "unit_id": sim.unit_id,
                "poll_interval": self.poll_interval,
            }
            for kind, sim in sims.items()
        ]
        self.stack = FieldStack({**self.extra, "devices": devices + list(self.extra.get("devices", []))}, self._sink)
        await self.stack.start()

    def _step(self) -> None:
        self.simulator.set_available_power(self.simulator.rated_w * sun_fraction(time.time(), self.day_seconds))
        self.update_meter()

    def update_meter(self) -> None:
        """Point-of-connection power: load minus inverter output minus battery discharge."""
        produced = float(self.simulator.get(103, "W") or 0)
        discharged = float(self.battery.get(802, "W") or 0)
        watts = round(self.load_w - produced - discharged)
        phase = round(watts / 3)
        amps = round(abs(watts) / 230.0, 2)
        values = {"W": watts, "WphA": phase, "WphB": phase, "WphC": watts - 2 * phase, "VA": abs(watts), "A": amps}
        self.meter.update(203, values)

    async def _follow_the_sun(self, step: float = 1.0) -> None:
        while True:
            await asyncio.sleep(step)
            self._step()

    async def stop(self) -> None:
        if self.stack is not None:
            await self.stack.stop()
        if self._sun is not None:
            self._sun.cancel()
            await asyncio.gather(self._sun, return_exceptions=True)
        for sim in (self.simulator, self.meter, self.battery):
            await sim.stop()

    def field_devices(self) -> list[dict[str, Any]]:
        return self.stack.field_devices() if self.stack is not None else []

    def link_statuses(self) -> list[dict[str, Any]]:
        return self.stack.link_statuses() if self.stack is not None else []

    async def execute(self, name: str, args: Mapping[str, Any]) -> CommandOutcome:
        if self.stack is None:
            return CommandOutcome("failed", "the simulated site is not started")
        return await self.stack.execute(name, args)

    # The field stack's setpoint path, for the SCADA protocols of a simulated gateway.
    async def apply_setpoint(self, device_id: str, setpoint: Setpoint, *, source: str) -> SetpointResult:
        if self.stack is None:
            raise ControlFailed("the simulated site is not started")
        return await self.stack.apply_setpoint(device_id, setpoint, source=source)

    def device_ids(self, kind: str | None = None) -> list[str]:
        return self.stack.device_ids(kind) if self.stack is not None else []


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gridfleet_agent_simulators.sunspec",
        description="Serve a simulated SunSpec inverter over Modbus TCP or RTU (SunS at 40000).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1502, help="TCP port (0 picks a free one)")
    parser.add_argument("--unit-id", type=int, default=1)
    parser.add_argument("--serial-port", default=None, help="serve Modbus RTU on this serial device instead of TCP")
    parser.add_argument("--baudrate", type=int, default=9600, help="RTU baud rate (default: %(default)s)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="inverter",
        help="the kind of device and its models (default: %(default)s)",
    )
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated SunSpec model ids, starting with 1 (default: the preset's, "
        f"for an inverter {','.join(map(str, DEFAULT_MODELS))})",
    )
    parser.add_argument("--serial", default=None, help="serial number reported in model 1")
    parser.add_argument("--rated-w", type=float, default=10_000.0, help="WMax for power limits (default: %(default)s)")
    parser.add_argument(
        "--solar-day",
        type=float,
        default=0.0,
        help="seconds per simulated day: output follows a sun curve and honours power limits; "
        "86400 follows the UTC clock, daylight 06:00-18:00 (0: static values)",
    )
    parser.add_argument("--console", action="store_true", help="read fault-injection commands from stdin")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    values = {1: {"SN": args.serial}} if args.serial else None
    options: dict[str, Any] = {}
    if args.models:
        options["models"] = tuple(int(m) for m in args.models.split(",") if m.strip())

    async def serve() -> None:
        sim = SunSpecSimulator.preset(
            args.preset,
            values=values,
            **options,
            unit_id=args.unit_id,
            host=args.host,
            port=args.port,
            serial_port=args.serial_port,
            baudrate=args.baudrate,
            rated_w=args.rated_w,
        )
        async with sim:
            print(f"SunSpec simulator on {sim.endpoint} models {sim.model_ids}", flush=True)
            jobs: list[Coroutine[Any, Any, Any]] = [asyncio.Event().wait()]  # serve until interrupted
            if args.solar_day > 0:
                jobs.append(follow_the_sun(sim, day_seconds=args.solar_day))
            if args.console:
                jobs.append(console(sim))
            await asyncio.gather(*jobs)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
