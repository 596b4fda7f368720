"""Field device configuration: the `field` section of the gateway's configuration bundle.

It arrives through the signed-update path as JSON; `FieldConfig.from_dict` validates it and
reports every problem at once, each with the path of the offending key, so an operator can
fix a bundle in one pass. The accepted shape is documented in docs/field-devices.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from gridfleet_agent.errors import AgentError
from gridfleet_agent.field.events import VENDOR_EVENT_POINTS, EventDefinition, Severity
from gridfleet_agent.field.logic import SiteLogicConfig, parse_site_logic
from gridfleet_agent.field.templates import KINDS, Template, parse_templates

Protocol = Literal["sunspec-tcp", "sunspec-rtu", "modbus-tcp", "modbus-rtu"]
PROTOCOLS: tuple[Protocol, ...] = ("sunspec-tcp", "sunspec-rtu", "modbus-tcp", "modbus-rtu")
TCP_PROTOCOLS = ("sunspec-tcp", "modbus-tcp")
MAX_SERIAL = 64  # characters, as the server's FieldDevice.serial
DEVICE_KINDS = KINDS
SUPPORTED_MODELS = frozenset({1, 101, 102, 103, 123, 201, 202, 203, 204, *range(701, 715), 802, 803})
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # also an MQTT topic level
_NAME = r"[A-Za-z][A-Za-z0-9_]*"
#: "<model>.<point>", or a point inside (repeating) groups: "705.Crv[1].Pt[2].V".
_POINT_REF = re.compile(rf"^(\d+)\.((?:{_NAME}(?:\[[1-9]\d*\])?\.)*{_NAME})$")
_SEVERITIES = tuple(s.value for s in Severity)
EVENT_BITS = 32  # event bitfields are 32 bits wide
MAX_CODE_CHARS = 200  # an alarm code, as the uplink protocol limits it
_TOPIC_PREFIX = re.compile(r"^[^#+\s]+$")


class FieldConfigError(AgentError, ValueError):
    """The field configuration is invalid; `problems` lists each one as 'path: what to change'."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid field configuration: " + "; ".join(self.problems))


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    protocol: Protocol
    unit_id: int
    kind: str = "inverter"
    host: str | None = None
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    poll_interval: float = 10.0
    timeout: float = 2.0
    #: Model ids to read; None reads every supported model the device has.
    models: frozenset[int] | None = None
    #: Extra raw points reported in telemetry as "<model>.<point>", e.g. "701.TmpAmb".
    points: tuple[tuple[int, str], ...] = ()
    #: Consecutive polls an event bit must be seen set (or clear) before it raises (or clears).
    debounce_polls: int = 2
    #: Consecutive failed polls before the communication-loss alarm is raised.
    comm_loss_after: int = 3
    #: modbus-tcp/-rtu: the device template (shipped or in `templates`) describing its registers.
    template: str | None = None
    #: Serial number reported as inventory, for template devices that do not tell it.
    serial: str | None = None

    @property
    def address(self) -> str:
        """Where the device is, as the server's FieldDevice.address shows it."""
        if self.protocol in TCP_PROTOCOLS:
            return f"{self.host}:{self.port}/{self.unit_id}"
        return f"{self.serial_port}/{self.unit_id}"


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "gridfleet"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = 60


VendorEvents = Mapping[str, Mapping[str, Mapping[int, EventDefinition]]]


@dataclass(frozen=True)
class FieldConfig:
    devices: tuple[DeviceConfig, ...] = ()
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    #: make (lower case) -> "<model>.<EvtVndN>" -> bit -> alarm, on top of events.VENDOR_EVENTS.
    vendor_events: VendorEvents = field(default_factory=dict)
    #: Device templates by name: the shipped ones overlaid with the configuration's.
    templates: Mapping[str, Template] = field(default_factory=dict)
    #: Rules run on the gateway (logic.py).
    site_logic: SiteLogicConfig = field(default_factory=SiteLogicConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldConfig:
        return _Parser().parse(data)

    @classmethod
    def from_json_file(cls, path: Path) -> FieldConfig:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FieldConfigError([f"{path}: {exc}"]) from exc
        return cls.from_dict(data)


class _Parser:
    """Collects every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.templates: dict[str, Template] = {}
        self.raw_templates: set[str] = set()

    def parse(self, data: Mapping[str, Any]) -> FieldConfig:
        if not isinstance(data, Mapping):
            raise FieldConfigError(["field: must be an object with 'devices' and optional 'mqtt'"])
        self._unknown_keys("field", data, {"devices", "mqtt", "vendor_events", "templates", "site_logic"})
        raw_templates = data.get("templates", {})
        if not isinstance(raw_templates, Mapping):
            self.problems.append("templates: must be an object of template name -> YAML text")
            raw_templates = {}
        self.raw_templates = set(raw_templates)
        self.templates, problems = parse_templates(raw_templates)
        self.problems += problems
        raw_devices = data.get("devices", [])
        devices: list[DeviceConfig] = []
        if not isinstance(raw_devices, list):
            self.problems.append("devices: must be a list")
        else:
            for index, raw in enumerate(raw_devices):
                device = self._device(f"devices[{index}]", raw)
                if device is not None:
                    devices.append(device)
        seen: set[str] = set()
        for device in devices:
            if device.id in seen:
                self.problems.append(f"devices: id {device.id!r} is used more than once")
            seen.add(device.id)
        self._serial_lines(devices)
        mqtt = self._mqtt(data.get("mqtt", {}))
        vendor_events = self._vendor_events(data.get("vendor_events", {}))
        site_logic = parse_site_logic(data.get("site_logic"), {d.id: d.kind for d in devices}, self.problems)
        if self.problems:
            raise FieldConfigError(self.problems)
        return FieldConfig(
            devices=tuple(devices),
            mqtt=mqtt,
            vendor_events=vendor_events,
            templates=self.templates,
            site_logic=site_logic,
        )

    def _serial_lines(self, devices: list[DeviceConfig]) -> None:
        """Devices sharing a serial port share its settings and its protocol."""
        line_settings: dict[str, tuple[int, str]] = {}
        line_protocol: dict[str, str] = {}
        for device in devices:
            if device.serial_port is not None and line_protocol.setdefault(device.serial_port, device.protocol) != (
                device.protocol
            ):
                self.problems.append(
                    f"devices: {device.id!r} is {device.protocol} on {device.serial_port}, which another device uses "
                    f"for {line_protocol[device.serial_port]}; one serial line speaks one of them (each opens the port)"
                )
            if device.protocol in ("sunspec-rtu", "modbus-rtu") and device.serial_port is not None:
                settings = line_settings.setdefault(device.serial_port, (device.baudrate, device.parity))
                if settings != (device.baudrate, device.parity):
                    self.problems.append(
                        f"devices: {device.id!r} shares {device.serial_port} with another device but not its "
                        f"baudrate/parity ({settings[0]} {settings[1]}); one serial line has one setting"
                    )

    def _vendor_events(self, raw: Any) -> VendorEvents:
        """{"Acme Solar": {"103.EvtVnd1": {"3": {"code", "severity", "message"}}}}"""
        tables: dict[str, dict[str, dict[int, EventDefinition]]] = {}
        if not isinstance(raw, Mapping):
            self.problems.append("vendor_events: must be an object of makes")
            return tables
        vendor_points = {f"{m}.{p}" for m, p in VENDOR_EVENT_POINTS}
        for make, points in raw.items():
            path = f"vendor_events.{make}"
            if not isinstance(points, Mapping):
                self.problems.append(f"{path}: must be an object of vendor bitfields")
                continue
            for ref, bits in points.items():
                if ref not in vendor_points:
                    self.problems.append(
                        f"{path}.{ref}: not a vendor bitfield (one of {', '.join(sorted(vendor_points))})"
                    )
                    continue
                if not isinstance(bits, Mapping):
                    self.problems.append(f"{path}.{ref}: must be an object of bit numbers")
                    continue
                for bit, spec in bits.items():
                    where = f"{path}.{ref}.{bit}"
                    if not (isinstance(bit, str) and bit.isdigit() and int(bit) < EVENT_BITS):
                        self.problems.append(f"{where}: the key is a bit number 0..31")
                    elif not isinstance(spec, Mapping) or set(spec) - {"code", "severity", "message"}:
                        self.problems.append(f"{where}: an object with code, severity and message")
                    elif not isinstance(spec.get("code"), str) or not 1 <= len(spec["code"]) <= MAX_CODE_CHARS:
                        self.problems.append(f"{where}.code: required, 1..200 characters")
                    elif spec.get("severity", "indeterminate") not in _SEVERITIES:
                        self.problems.append(f"{where}.severity: one of {', '.join(_SEVERITIES)}")
                    else:
                        tables.setdefault(make.strip().lower(), {}).setdefault(ref, {})[int(bit)] = EventDefinition(
                            int(bit),
                            spec["code"],
                            Severity(spec.get("severity", "indeterminate")),
                            str(spec.get("message", spec["code"])),
                        )
        return tables

    def _device(self, path: str, raw: Any) -> DeviceConfig | None:
        if not isinstance(raw, Mapping):
            self.problems.append(f"{path}: must be an object")
            return None
        before = len(self.problems)
        self._unknown_keys(path, raw, {f.name for f in DeviceConfig.__dataclass_fields__.values()})
        device_id = raw.get("id")
        if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
            self.problems.append(f"{path}.id: required, 1-64 letters, digits, '.', '_' or '-'")
        protocol = raw.get("protocol")
        if protocol not in PROTOCOLS:
            self.problems.append(f"{path}.protocol: must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
        template_name = raw.get("template")
        template = self.templates.get(template_name) if isinstance(template_name, str) else None
        broken = isinstance(template_name, str) and template_name in self.raw_templates  # reported already
        if protocol in ("modbus-tcp", "modbus-rtu") and template is None and not broken:
            self.problems.append(
                f"{path}.template: required for {protocol}, one of {', '.join(sorted(self.templates))} "
                f"or a template in 'templates' (got {template_name!r})"
            )
        elif protocol in ("sunspec-tcp", "sunspec-rtu") and template_name is not None:
            self.problems.append(f"{path}.template: only for modbus-tcp/-rtu (SunSpec devices describe themselves)")
        serial = raw.get("serial")
        if serial is not None and (not isinstance(serial, str) or not 1 <= len(serial) <= MAX_SERIAL):
            self.problems.append(f"{path}.serial: 1..{MAX_SERIAL} characters")
        kind = raw.get("kind", template.kind if template else "inverter")
        if kind not in DEVICE_KINDS:
            self.problems.append(f"{path}.kind: must be one of {', '.join(DEVICE_KINDS)} (got {kind!r})")
        unit_id = self._int(f"{path}.unit_id", raw.get("unit_id", 1), 1, 247)
        host = raw.get("host")
        serial_port = raw.get("serial_port")
        if protocol in TCP_PROTOCOLS and (not isinstance(host, str) or not host):
            self.problems.append(f"{path}.host: required for {protocol} (IP address or host name)")
        if protocol in ("sunspec-rtu", "modbus-rtu") and (not isinstance(serial_port, str) or not serial_port):
            self.problems.append(f"{path}.serial_port: required for {protocol} (e.g. /dev/ttyUSB0)")
        port = self._int(f"{path}.port", raw.get("port", 502), 1, 65535)
        baudrate = self._int(f"{path}.baudrate", raw.get("baudrate", 9600), 1200, 921600)
        parity = raw.get("parity", "N")
        if parity not in ("N", "E", "O"):
            self.problems.append(f"{path}.parity: must be 'N', 'E' or 'O'")
        poll_interval = self._number(f"{path}.poll_interval", raw.get("poll_interval", 10.0), 0.05, 86400)
        timeout = self._number(f"{path}.timeout", raw.get("timeout", 2.0), 0.05, 60)
        models = self._models(f"{path}.models", raw.get("models"))
        points = self._points(f"{path}.points", raw.get("points", []))
        debounce = self._int(f"{path}.debounce_polls", raw.get("debounce_polls", 2), 1, 100)
        comm_loss_after = self._int(f"{path}.comm_loss_after", raw.get("comm_loss_after", 3), 1, 100)
        if len(self.problems) > before:
            return None
        return DeviceConfig(
            id=cast(str, device_id),
            protocol=cast(Protocol, protocol),
            unit_id=unit_id,
            kind=kind,
            host=host,
            port=port,
            serial_port=serial_port,
            baudrate=baudrate,
            parity=parity,
            poll_interval=poll_interval,
            timeout=timeout,
            models=models,
            points=points,
            debounce_polls=debounce,
            comm_loss_after=comm_loss_after,
            template=template_name,
            serial=serial,
        )

    def _mqtt(self, raw: Any) -> MqttConfig:
        if not isinstance(raw, Mapping):
            self.problems.append("mqtt: must be an object")
            return MqttConfig()
        self._unknown_keys("mqtt", raw, {f.name for f in MqttConfig.__dataclass_fields__.values()})
        enabled = raw.get("enabled", False)
        if not isinstance(enabled, bool):
            self.problems.append("mqtt.enabled: must be true or false")
        host = raw.get("host", "127.0.0.1")
        if not isinstance(host, str) or not host:
            self.problems.append("mqtt.host: must be a host name or address")
        prefix = raw.get("topic_prefix", "gridfleet")
        if not isinstance(prefix, str) or not _TOPIC_PREFIX.match(prefix) or prefix.endswith("/"):
            self.problems.append("mqtt.topic_prefix: a topic without wildcards, spaces or trailing '/'")
        for key in ("client_id", "username", "password"):
            if raw.get(key) is not None and not isinstance(raw.get(key), str):
                self.problems.append(f"mqtt.{key}: must be a string")
        return MqttConfig(
            enabled=enabled is True,
            host=host,
            port=self._int("mqtt.port", raw.get("port", 1883), 1, 65535),
            topic_prefix=prefix,
            client_id=raw.get("client_id"),
            username=raw.get("username"),
            password=raw.get("password"),
            keepalive=self._int("mqtt.keepalive", raw.get("keepalive", 60), 5, 3600),
        )

    def _unknown_keys(self, path: str, raw: Mapping[str, Any], known: set[str]) -> None:
        for key in sorted(set(raw) - known):
            self.problems.append(f"{path}.{key}: unknown key (known: {', '.join(sorted(known))})")

    def _int(self, path: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problems.append(f"{path}: must be an integer {low}..{high} (got {value!r})")
            return low
        return value

    def _number(self, path: str, value: Any, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            self.problems.append(f"{path}: must be a number of seconds {low}..{high} (got {value!r})")
            return low
        return float(value)

    def _models(self, path: str, value: Any) -> frozenset[int] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in value):
            self.problems.append(f"{path}: must be a list of SunSpec model ids")
            return None
        unsupported = sorted(set(value) - SUPPORTED_MODELS)
        if unsupported:
            self.problems.append(
                f"{path}: unsupported model ids {unsupported} (supported: 1, 101-103, 123, 201-204, 701-714, 802, 803)"
            )
        return frozenset(value) | {1}  # model 1 carries the identity reported as inventory

    def _points(self, path: str, value: Any) -> tuple[tuple[int, str], ...]:
        if not isinstance(value, list):
            self.problems.append(f'{path}: must be a list like ["701.TmpAmb"]')
            return ()
        points: list[tuple[int, str]] = []
        for index, ref in enumerate(value):
            match = _POINT_REF.match(ref) if isinstance(ref, str) else None
            if match is None:
                self.problems.append(
                    f"{path}[{index}]: write a point as '<model id>.<point name>', e.g. '701.TmpAmb' "
                    "or '705.Crv[1].Pt[2].V'"
                )
                continue
            points.append((int(match.group(1)), match.group(2)))
        return tuple(points)
