"""Talking to a template-described (non-SunSpec) Modbus device through pymodbus.

Same shape as `SunSpecDevice` (discover, read, apply, close; blocking, run in the stack's
worker threads, serialised per bus), so the poller and the one setpoint path treat both alike.
The register map comes from the device's template (templates.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusException

from gridfleet_agent.field.config import DeviceConfig
from gridfleet_agent.field.errors import ControlFailed, ControlRejected, DeviceUnreachable
from gridfleet_agent.field.events import EventDefinition, EventSource, Severity
from gridfleet_agent.field.setpoints import Connection, PointValue, PowerLimit, Setpoint, SetpointResult
from gridfleet_agent.field.sunspec import DeviceIdentity, EventReading, Reading, bus_lock
from gridfleet_agent.field.templates import AlarmSpec, Register, SetpointSpec, Template, decode, encode

#: Registers (or bits) per read request; contiguous points closer than MAX_GAP share one.
MAX_REGISTERS, MAX_BITS, MAX_GAP = 120, 1968, 8


class TemplateDevice:
    """One configured template device. Not thread-safe by itself: calls take the bus lock."""

    def __init__(self, config: DeviceConfig, template: Template) -> None:
        self.config = config
        self.template = template
        self.identity: DeviceIdentity | None = None
        self._client: ModbusTcpClient | ModbusSerialClient | None = None
        if config.protocol == "modbus-tcp":
            self.lock = bus_lock(f"tcp:{config.host}:{config.port}:{config.unit_id}")
        else:
            self.lock = bus_lock(f"rtu:{config.serial_port}")
        self._sources = tuple(_alarm_source(template.name, a) for a in template.alarms)

    @property
    def needs_discovery(self) -> bool:
        return self._client is None

    def discover(self) -> DeviceIdentity:
        """Connect and read the map once: a device that answers it is the device we expect."""
        with self.lock:
            self._disconnect()
            self._client = self._open()
            self._read_all()
            self.identity = DeviceIdentity(
                make=self.template.make,
                model=self.template.model,
                serial=self.config.serial,
                firmware_version=None,
                sunspec_models=(),
            )
            return self.identity

    def read(self) -> Reading:
        with self.lock:
            if self._client is None:
                raise DeviceUnreachable("device not discovered yet")
            values, words = self._read_all()
        events = tuple(
            EventReading(source, int(words[i]), (f"{a.table}:{a.register}",))
            for i, (a, source) in enumerate(zip(self.template.alarms, self._sources, strict=True))
        )
        return Reading(values=values, events=events)

    def apply(self, setpoint: Setpoint) -> SetpointResult:
        spec, value = self._target(setpoint)
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            limits = f"{spec.minimum}..{spec.maximum}"
            raise ControlRejected(f"{spec.name}={value} outside {limits} (template {self.template.name})")
        with self.lock:
            client = self._require_client()
            registers = encode(spec, value, self.template.word_order)
            try:
                if spec.table == "coil":
                    response = client.write_coil(spec.register, bool(registers[0]), device_id=self.config.unit_id)
                else:
                    response = client.write_registers(spec.register, registers, device_id=self.config.unit_id)
            except ModbusException as exc:
                self._disconnect()
                raise ControlFailed(f"no answer writing {spec.name}: {_one_line(exc)}") from exc
            if response.isError():
                raise ControlRejected(f"device refused {spec.name}={value}: {response}")
            readback = self._read_one(spec)
        resolution = abs(spec.scale) if not spec.type.startswith("float") else 1e-3 * max(1.0, abs(value))
        if abs(readback - value) > resolution / 2:
            raise ControlFailed(f"read back {spec.name}={readback} after writing {value}; the device did not apply it")
        return SetpointResult(self.config.id, setpoint, None, {spec.name: readback})

    def close(self) -> None:
        with self.lock:
            self._disconnect()

    # -- internals ------------------------------------------------------------------------

    def _target(self, setpoint: Setpoint) -> tuple[SetpointSpec, float]:
        name = self.template.name
        match setpoint:
            case PowerLimit(percent=percent):
                spec = self.template.setpoint_for("power_limit")
                if spec is None:
                    raise ControlRejected(f"template {name} has no setpoint with role power_limit")
                lifted = spec.maximum if spec.maximum is not None else 100.0
                return spec, lifted if percent is None else percent
            case Connection(connected=connected):
                spec = self.template.setpoint_for("connection")
                if spec is None:
                    raise ControlRejected(f"template {name} has no setpoint with role connection")
                return spec, 1.0 if connected else 0.0
            case PointValue(point=point, value=value):
                spec = self.template.setpoint(point)
                if spec is None:
                    names = ", ".join(s.name for s in self.template.setpoints) or "none"
                    raise ControlRejected(f"template {name} has no setpoint {point!r} (its setpoints: {names})")
                return spec, float(value)
        raise ControlRejected(f"a {type(setpoint).__name__} setpoint cannot be sent to a template device ({name})")

    def _read_all(self) -> tuple[dict[str, float | int], list[int]]:
        specs: list[Register] = [*self.template.points, *self.template.alarms]
        raw = self._fetch(specs)
        values = {p.name: decode(p, raw[id(p)], self.template.word_order) for p in self.template.points}
        words = [int(decode(a, raw[id(a)], self.template.word_order)) for a in self.template.alarms]
        return values, words

    def _read_one(self, spec: Register) -> float | int:
        return decode(spec, self._fetch([spec])[id(spec)], self.template.word_order)

    def _fetch(self, specs: Sequence[Register]) -> dict[int, list[int]]:
        """Read the registers of `specs` in as few requests as the gaps allow; id(spec) -> words."""
        client = self._require_client()
        out: dict[int, list[int]] = {}
        for table, start, count, members in _blocks(specs):
            try:
                response = _reader(client, table)(start, count=count, device_id=self.config.unit_id)
            except ModbusException as exc:
                self._disconnect()
                raise DeviceUnreachable(_one_line(exc)) from exc
            if response.isError():
                raise DeviceUnreachable(
                    f"device answered {response} to a read of {table} {start}..{start + count - 1}; "
                    f"does template {self.template.name} match it?"
                )
            data = [int(b) for b in response.bits] if table in ("coil", "discrete") else list(response.registers)
            for spec in members:
                out[id(spec)] = data[spec.register - start : spec.register - start + spec.count]
        return out

    def _open(self) -> ModbusTcpClient | ModbusSerialClient:
        cfg = self.config
        client: ModbusTcpClient | ModbusSerialClient
        if cfg.protocol == "modbus-tcp":
            client = ModbusTcpClient(str(cfg.host), port=cfg.port, timeout=cfg.timeout, retries=0)
        else:
            client = ModbusSerialClient(
                str(cfg.serial_port), baudrate=cfg.baudrate, parity=cfg.parity, timeout=cfg.timeout, retries=0
            )
        if not client.connect():
            raise DeviceUnreachable(f"cannot connect to {cfg.address}")
        return client

    def _require_client(self) -> Any:
        if self._client is None:
            raise DeviceUnreachable("device not discovered yet")
        return self._client

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None


def _alarm_source(template: str, alarm: AlarmSpec) -> EventSource:
    """An alarm word of a template; a bit the template does not name still raises an alarm."""
    where = f"{alarm.table}_{alarm.register}"

    def unknown(bit: int) -> EventDefinition:
        message = f"{template}: {alarm.table} {alarm.register} bit {bit} set"
        return EventDefinition(bit, f"template.{template}.{where}.bit_{bit}", Severity.INDETERMINATE, message)

    return EventSource(f"template:{where}", (), alarm.bits, unknown)


def _reader(client: Any, table: str) -> Any:
    return {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[table]


def _blocks(specs: Sequence[Register]) -> Iterator[tuple[str, int, int, list[Register]]]:
    for table in ("holding", "input", "coil", "discrete"):
        ordered = sorted((s for s in specs if s.table == table), key=lambda s: s.register)
        limit = MAX_BITS if table in ("coil", "discrete") else MAX_REGISTERS
        block: list[Register] = []
        for spec in ordered:
            if block:
                start, end = block[0].register, max(s.register + s.count for s in block)
                if spec.register - end > MAX_GAP or spec.register + spec.count - start > limit:
                    yield table, start, end - start, block
                    block = []
            block.append(spec)
        if block:
            start, end = block[0].register, max(s.register + s.count for s in block)
            yield table, start, end - start, block


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
