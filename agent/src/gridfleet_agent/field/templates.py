"""Device templates: declarative Modbus register maps for field devices that do not speak SunSpec.

A template is YAML (docs/field-devices.md section 11 has the format)::

    template: eastron-sdm630
    kind: meter
    make: Eastron
    model: SDM630
    word_order: big
    points:
      - {name: W, register: 52, table: input, type: float32, unit: W}
      - {name: TotWhImp, register: 72, table: input, type: float32, scale: 1000, unit: Wh}
    alarms:
      - register: 200
        table: holding
        bits:
          0: {code: acme.over_temperature, severity: major, message: Over-temperature}
    setpoints:
      - {name: power_limit_pct, register: 300, type: uint16, scale: 0.1, min: 0, max: 100, role: power_limit}

Templates ship with the agent (`field/templates/*.yaml`) and travel in the field configuration
(`field.templates`, name -> YAML text), which reaches the gateway inside its signed
configuration bundle. Parsing reports every problem at once with its line and field
(`line 12, points[3].type: must be one of ...`), so an integrator fixes a template in one pass.
This module is pure: parsing and value conversion; `modbus.py` does the I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml
from pymodbus.client.mixin import ModbusClientMixin

from gridfleet_agent.errors import AgentError
from gridfleet_agent.field.events import EventDefinition, Severity

Table = Literal["holding", "input", "coil", "discrete"]
TABLES: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
#: Register count of each type; bool lives in a coil or discrete input.
TYPES: Mapping[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
    "bool": 1,
}
#: What a setpoint can stand in for on the one setpoint path (setpoints.py).
ROLES = ("power_limit", "connection")
KINDS = ("inverter", "meter", "battery", "weather_station", "io_module")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SEVERITIES = tuple(s.value for s in Severity)
MAX_ADDRESS = 65535  # Modbus addresses are 16-bit
MAX_CODE = 200  # characters of an alarm code, as the uplink's alarm.code


class TemplateError(AgentError, ValueError):
    """A template is invalid; `problems` lists each as 'line N, field: what to change'."""

    def __init__(self, name: str, problems: Sequence[str]) -> None:
        self.name = name
        self.problems = list(problems)
        super().__init__(f"template {name}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Register:
    """Where a value lives and how it is encoded."""

    register: int
    table: Table
    type: str
    scale: float = 1.0
    offset: float = 0.0

    @property
    def count(self) -> int:
        return TYPES[self.type]


@dataclass(frozen=True)
class PointSpec(Register):
    name: str = ""
    unit: str | None = None


@dataclass(frozen=True)
class AlarmSpec(Register):
    bits: Mapping[int, EventDefinition] = field(default_factory=dict)


@dataclass(frozen=True)
class SetpointSpec(Register):
    name: str = ""
    minimum: float | None = None
    maximum: float | None = None
    role: str | None = None


@dataclass(frozen=True)
class Template:
    name: str
    kind: str
    make: str | None
    model: str | None
    word_order: Literal["big", "little"]
    points: tuple[PointSpec, ...]
    alarms: tuple[AlarmSpec, ...] = ()
    setpoints: tuple[SetpointSpec, ...] = ()

    def setpoint(self, name: str) -> SetpointSpec | None:
        return next((s for s in self.setpoints if s.name == name), None)

    def setpoint_for(self, role: str) -> SetpointSpec | None:
        return next((s for s in self.setpoints if s.role == role), None)


def shipped_templates() -> dict[str, str]:
    """name -> YAML text of the templates that ship with the agent."""
    folder = resources.files("gridfleet_agent.field").joinpath("templates")
    return {
        entry.name.removesuffix(".yaml"): entry.read_text()
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def parse_template(name: str, text: str) -> Template:
    """Parse and validate one template; raises TemplateError listing every problem."""
    return _TemplateParser(name).parse(text)


# -- parsing ------------------------------------------------------------------------------------


class _Located(dict[str, Any]):
    """A YAML mapping that remembers the line of each key (1-based) and its own."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Located:
    mapping = _Located(loader.construct_mapping(node, deep=True))  # type: ignore[arg-type]
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _TemplateParser:
    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[str] = []

    def problem(self, where: Any, key: str | None, path: str, message: str) -> None:
        line = (
            where.key_lines.get(key, where.line) if isinstance(where, _Located) and key else getattr(where, "line", 0)
        )
        self.problems.append(f"line {line}, {path}: {message}" if line else f"{path}: {message}")

    def parse(self, text: str) -> Template:
        try:
            # _LineLoader is a SafeLoader subclass that only records line numbers.
            data = yaml.load(text, Loader=_LineLoader)  # noqa: S506  # nosec B506
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, " if mark is not None else ""
            raise TemplateError(self.name, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
        if not isinstance(data, _Located):
            raise TemplateError(self.name, ["the template must be a YAML mapping (template, kind, points...)"])
        self.unknown(data, "", {"template", "kind", "make", "model", "word_order", "points", "alarms", "setpoints"})
        declared = data.get("template", self.name)
        if declared != self.name:
            self.problem(data, "template", "template", f"is {declared!r} but the template is stored as {self.name!r}")
        kind = data.get("kind")
        if kind not in KINDS:
            self.problem(data, "kind", "kind", f"required, one of {', '.join(KINDS)} (got {kind!r})")
        for key in ("make", "model"):
            if data.get(key) is not None and not isinstance(data.get(key), str):
                self.problem(data, key, key, "must be a string")
        word_order = data.get("word_order", "big")
        if word_order not in ("big", "little"):
            self.problem(data, "word_order", "word_order", "must be 'big' (high word first) or 'little'")
        points = tuple(self.items(data, "points", self.point, required=True))
        alarms = tuple(self.items(data, "alarms", self.alarm))
        setpoints = tuple(self.items(data, "setpoints", self.setpoint))
        names = [p.name for p in points]
        for duplicate in sorted({n for n in names if names.count(n) > 1}):
            self.problem(data, "points", "points", f"point name {duplicate!r} is used more than once")
        roles = [s.role for s in setpoints if s.role]
        for duplicate in sorted({r for r in roles if roles.count(r) > 1}):
            self.problem(data, "setpoints", "setpoints", f"role {duplicate!r} is given to more than one setpoint")
        if self.problems:
            raise TemplateError(self.name, self.problems)
        return Template(
            name=self.name,
            kind=str(kind),
            make=data.get("make"),
            model=data.get("model"),
            word_order=word_order,
            points=points,
            alarms=alarms,
            setpoints=setpoints,
        )

    def items(self, data: _Located, key: str, parse: Any, *, required: bool = False) -> list[Any]:
        raw = data.get(key, [])
        if not isinstance(raw, list) or (required and not raw):
            self.problem(data, key, key, "required, a list" if required else "must be a list")
            return []
        parsed = [parse(f"{key}[{index}]", item) for index, item in enumerate(raw)]
        return [p for p in parsed if p is not None]

    def unknown(self, raw: _Located, path: str, known: set[str]) -> None:
        for key in sorted(set(raw) - known, key=str):
            self.problem(raw, str(key), f"{path}{key}", f"unknown key (known: {', '.join(sorted(known))})")

    def register(self, path: str, raw: _Located, *, tables: Sequence[str] = TABLES) -> dict[str, Any] | None:
        before = len(self.problems)
        address = raw.get("register")
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= MAX_ADDRESS:
            self.problem(
                raw, "register", f"{path}.register", f"required, an address 0..{MAX_ADDRESS} (got {address!r})"
            )
        table = raw.get("table", "holding")
        if table not in tables:
            self.problem(raw, "table", f"{path}.table", f"must be one of {', '.join(tables)} (got {table!r})")
        bit_table = table in ("coil", "discrete")
        kind = raw.get("type", "bool" if bit_table else "uint16")
        if kind not in TYPES:
            self.problem(raw, "type", f"{path}.type", f"must be one of {', '.join(TYPES)} (got {kind!r})")
        elif bit_table != (kind == "bool"):
            self.problem(raw, "type", f"{path}.type", "coils and discrete inputs are bool; registers are not")
        numbers = {}
        for key, default in (("scale", 1.0), ("offset", 0.0)):
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                self.problem(raw, key, f"{path}.{key}", f"must be a number (got {value!r})")
            elif key == "scale" and value == 0:
                self.problem(raw, key, f"{path}.scale", "must not be 0")
            numbers[key] = float(value) if isinstance(value, int | float) else default
        if len(self.problems) > before:
            return None
        return {"register": address, "table": table, "type": kind, **numbers}

    def point(self, path: str, raw: Any) -> PointSpec | None:
        if not isinstance(raw, _Located):
            self.problem(raw, None, path, "must be a mapping with name, register, type...")
            return None
        self.unknown(raw, f"{path}.", {"name", "register", "table", "type", "scale", "offset", "unit"})
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.problem(raw, "name", f"{path}.name", "required, letters, digits and '_', starting with a letter")
        unit = raw.get("unit")
        if unit is not None and not isinstance(unit, str):
            self.problem(raw, "unit", f"{path}.unit", "must be a string")
        register = self.register(path, raw)
        if register is None or not isinstance(name, str) or not _NAME.match(name):
            return None
        return PointSpec(**register, name=name, unit=unit)

    def alarm(self, path: str, raw: Any) -> AlarmSpec | None:
        if not isinstance(raw, _Located):
            self.problem(raw, None, path, "must be a mapping with register and bits")
            return None
        self.unknown(raw, f"{path}.", {"register", "table", "type", "bits"})
        register = self.register(path, raw)
        if register is not None and register["type"] not in ("uint16", "uint32", "bool"):
            self.problem(raw, "type", f"{path}.type", "an alarm word is uint16, uint32 or a bool coil/input")
            register = None
        bits_raw = raw.get("bits")
        bits: dict[int, EventDefinition] = {}
        if not isinstance(bits_raw, _Located) or not bits_raw:
            self.problem(raw, "bits", f"{path}.bits", "required, a mapping of bit number -> {code, severity, message}")
            return None
        width = 16 * TYPES[register["type"]] if register and register["type"] != "bool" else 1
        for bit, spec in bits_raw.items():
            where = f"{path}.bits.{bit}"
            if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit < width:
                self.problem(bits_raw, str(bit), where, f"the key is a bit number 0..{width - 1}")
                continue
            if not isinstance(spec, _Located):
                self.problem(bits_raw, str(bit), where, "must be a mapping with code, severity, message")
                continue
            self.unknown(spec, f"{where}.", {"code", "severity", "message"})
            code, severity = spec.get("code"), spec.get("severity", "indeterminate")
            if not isinstance(code, str) or not 1 <= len(code) <= MAX_CODE:
                self.problem(spec, "code", f"{where}.code", f"required, 1..{MAX_CODE} characters")
            elif severity not in _SEVERITIES:
                self.problem(spec, "severity", f"{where}.severity", f"one of {', '.join(_SEVERITIES)}")
            else:
                bits[bit] = EventDefinition(bit, code, Severity(severity), str(spec.get("message", code)))
        if register is None:
            return None
        return AlarmSpec(**register, bits=bits)

    def setpoint(self, path: str, raw: Any) -> SetpointSpec | None:
        if not isinstance(raw, _Located):
            self.problem(raw, None, path, "must be a mapping with name, register, type...")
            return None
        known = {"name", "register", "table", "type", "scale", "offset", "min", "max", "role"}
        self.unknown(raw, f"{path}.", known)
        name, role = raw.get("name"), raw.get("role")
        if not isinstance(name, str) or not _NAME.match(name):
            self.problem(raw, "name", f"{path}.name", "required, letters, digits and '_', starting with a letter")
        if role is not None and role not in ROLES:
            self.problem(raw, "role", f"{path}.role", f"one of {', '.join(ROLES)} (got {role!r})")
        limits = {}
        for key in ("min", "max"):
            value = raw.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                self.problem(raw, key, f"{path}.{key}", "must be a number")
                value = None
            limits[key] = value
        register = self.register(path, raw, tables=("holding", "coil"))
        if register is None or not isinstance(name, str) or not _NAME.match(name):
            return None
        return SetpointSpec(**register, name=name, minimum=limits["min"], maximum=limits["max"], role=role)


def parse_templates(texts: Mapping[str, str]) -> tuple[dict[str, Template], list[str]]:
    """Parse the shipped templates overlaid with `texts`; returns the good ones and every
    problem as 'templates.<name>: line N, field: ...'."""
    templates: dict[str, Template] = {}
    problems: list[str] = []
    for name, text in {**shipped_templates(), **texts}.items():
        if not _TEMPLATE_NAME.match(name):
            problems.append(f"templates.{name}: a template name is 1-64 of a-z 0-9 . _ -")
            continue
        if not isinstance(text, str):
            problems.append(f"templates.{name}: must be the template's YAML text")
            continue
        try:
            templates[name] = parse_template(name, text)
        except TemplateError as exc:
            problems += [f"templates.{name}: {p}" for p in exc.problems]
    return templates, problems


# -- values ---------------------------------------------------------------------------------------


def decode(spec: Register, registers: Sequence[int], word_order: Literal["big", "little"]) -> float | int:
    """Registers (or a bit, for bool) -> engineering value: raw x scale + offset."""
    if spec.type == "bool":
        return int(bool(registers[0]))
    raw = ModbusClientMixin.convert_from_registers(
        list(registers), ModbusClientMixin.DATATYPE[spec.type.upper()], word_order=word_order
    )
    if not isinstance(raw, int | float):
        raise TypeError(f"{spec.type} decoded to {raw!r}")
    value = raw * spec.scale + spec.offset
    if isinstance(raw, int) and spec.scale.is_integer() and spec.offset.is_integer():
        return int(value)
    # float32 carries about 7 significant digits; more would only show its rounding noise.
    return float(f"{value:.7g}") if spec.type == "float32" else round(value, 9)


def encode(spec: Register, value: float, word_order: Literal["big", "little"]) -> list[int]:
    """Engineering value -> registers (or [0|1] for a bool)."""
    if spec.type == "bool":
        return [1 if value else 0]
    raw: float | int = (value - spec.offset) / spec.scale
    if not spec.type.startswith("float"):
        raw = round(raw)
    return ModbusClientMixin.convert_to_registers(
        raw, ModbusClientMixin.DATATYPE[spec.type.upper()], word_order=word_order
    )
