"""The `scada` and `cloud` sections of the gateway's signed configuration (config.json).

They arrive through the signed-update path (a config bundle, docs/agent.md) and are validated
here before any service starts, every problem at once with the path of the offending key, in
the same way as the `field` section (`FieldConfigError`). The shapes are documented in
docs/field-devices.md, "SCADA and cloud protocols".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gridfleet_agent.cloud.mqtt import PLATFORMS, BrokerConfig
from gridfleet_agent.field.config import FieldConfigError
from gridfleet_agent.scada.dnp3_master import Dnp3DeviceConfig
from gridfleet_agent.scada.dnp3_outstation import Dnp3OutstationConfig
from gridfleet_agent.scada.iec104 import Iec104Config
from gridfleet_agent.scada.iec61850 import FUNCTIONAL_CONSTRAINTS, Iec61850DeviceConfig, split_reference
from gridfleet_agent.scada.opcua import OpcUaConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOPIC = re.compile(r"^[^#+\s]+$")


class ProtocolConfigError(FieldConfigError):
    """The scada or cloud section is invalid; `problems` lists 'path: what to change'."""


@dataclass(frozen=True)
class ProtocolsConfig:
    dnp3_outstation: Dnp3OutstationConfig | None = None
    dnp3_master: tuple[Dnp3DeviceConfig, ...] = ()
    iec61850: tuple[Iec61850DeviceConfig, ...] = ()
    iec104: Iec104Config | None = None
    opcua: OpcUaConfig | None = None
    cloud: tuple[BrokerConfig, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.dnp3_outstation or self.dnp3_master or self.iec61850 or self.iec104 or self.opcua or self.cloud
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ProtocolsConfig:
        """Parse the `scada` and `cloud` keys of a configuration (both optional)."""
        return _Parser().parse(config)


class _Parser:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def parse(self, config: Mapping[str, Any]) -> ProtocolsConfig:
        scada = self._object("scada", config.get("scada", {}))
        self._unknown("scada", scada, {"dnp3_outstation", "dnp3_master", "iec61850", "iec104", "opcua"})
        outstation = self._section("scada.dnp3_outstation", scada.get("dnp3_outstation"), Dnp3OutstationConfig)
        iec104 = self._section("scada.iec104", scada.get("iec104"), Iec104Config)
        opcua = self._section("scada.opcua", scada.get("opcua"), OpcUaConfig)
        masters = [
            self._dnp3_device(f"scada.dnp3_master[{i}]", raw)
            for i, raw in enumerate(self._list("scada.dnp3_master", scada.get("dnp3_master", [])))
        ]
        ieds = [
            self._iec61850_device(f"scada.iec61850[{i}]", raw)
            for i, raw in enumerate(self._list("scada.iec61850", scada.get("iec61850", [])))
        ]
        cloud = self._object("cloud", config.get("cloud", {}))
        self._unknown("cloud", cloud, {"brokers"})
        brokers = [
            self._broker(f"cloud.brokers[{i}]", raw)
            for i, raw in enumerate(self._list("cloud.brokers", cloud.get("brokers", [])))
        ]
        for what, items in (("scada.dnp3_master", masters), ("scada.iec61850", ieds), ("cloud.brokers", brokers)):
            names = [str(getattr(item, "id", None) or getattr(item, "name", "")) for item in items if item]
            for name in sorted({n for n in names if names.count(n) > 1}):
                self.problems.append(f"{what}: {name!r} is used more than once")
        ports = [
            (c.host, c.port, what)
            for what, c in (("dnp3_outstation", outstation), ("iec104", iec104), ("opcua", opcua))
            if c
        ]
        for _host, port, what in ports:
            if sum(1 for _h, p, _w in ports if p == port) > 1:
                self.problems.append(f"scada.{what}.port: {port} is used by another protocol")
        if self.problems:
            raise ProtocolConfigError(self.problems)
        return ProtocolsConfig(
            dnp3_outstation=outstation,
            dnp3_master=tuple(m for m in masters if m is not None),
            iec61850=tuple(d for d in ieds if d is not None),
            iec104=iec104,
            opcua=opcua,
            cloud=tuple(b for b in brokers if b is not None),
        )

    # -- sections --------------------------------------------------------------------------------
    def _section(self, path: str, raw: Any, cls: type[Any]) -> Any:
        if raw is None:
            return None
        raw = self._object(path, raw)
        if raw.get("enabled", True) is False:
            return None
        values = self._values(path, raw, cls, skip={"enabled"})
        if cls is OpcUaConfig and "trusted_ca_pem" in values:
            pems = values["trusted_ca_pem"]
            if not pems or not all("-----BEGIN CERTIFICATE-----" in p for p in pems):
                self.problems.append(f"{path}.trusted_ca_pem: a non-empty list of PEM CA certificates")
        return self._build(path, cls, values)

    def _dnp3_device(self, path: str, raw: Any) -> Dnp3DeviceConfig | None:
        raw = self._object(path, raw)
        values = self._values(path, raw, Dnp3DeviceConfig, skip={"analog", "binary", "counter"})
        for kind in ("analog", "binary", "counter"):
            mapping = self._object(f"{path}.{kind}", raw.get(kind, {}))
            parsed: dict[int, str] = {}
            for index, name in mapping.items():
                if not str(index).isdigit() or not isinstance(name, str) or not _NAME.match(name):
                    self.problems.append(f"{path}.{kind}.{index}: map a point index (digits) to a point name")
                else:
                    parsed[int(index)] = name
            values[kind] = parsed
        if not isinstance(values.get("id"), str) or not _NAME.match(values.get("id", "")):
            self.problems.append(f"{path}.id: required, 1-64 letters, digits, '.', '_' or '-'")
        if not values.get("host"):
            self.problems.append(f"{path}.host: required, the outstation's address")
        device: Dnp3DeviceConfig | None = self._build(path, Dnp3DeviceConfig, values)
        return device

    def _iec61850_device(self, path: str, raw: Any) -> Iec61850DeviceConfig | None:
        raw = self._object(path, raw)
        values = self._values(path, raw, Iec61850DeviceConfig, skip={"points"})
        points = self._object(f"{path}.points", raw.get("points", {}))
        for name, reference in points.items():
            if not _NAME.match(str(name)) or not isinstance(reference, str) or "/" not in reference:
                self.problems.append(
                    f"{path}.points.{name}: map a point name to an object reference like LD0/MMXU1.TotW.mag.f"
                )
            elif split_reference(reference)[1] not in FUNCTIONAL_CONSTRAINTS:
                self.problems.append(
                    f"{path}.points.{name}: unknown functional constraint in {reference!r} "
                    f"(one of {', '.join(FUNCTIONAL_CONSTRAINTS)})"
                )
        if not points:
            self.problems.append(f"{path}.points: required, at least one point name -> object reference")
        values["points"] = dict(points)
        if not isinstance(values.get("id"), str) or not _NAME.match(values.get("id", "")):
            self.problems.append(f"{path}.id: required, 1-64 letters, digits, '.', '_' or '-'")
        if not values.get("host"):
            self.problems.append(f"{path}.host: required, the IED's address")
        device: Iec61850DeviceConfig | None = self._build(path, Iec61850DeviceConfig, values)
        return device

    def _broker(self, path: str, raw: Any) -> BrokerConfig | None:
        raw = self._object(path, raw)
        values = self._values(path, raw, BrokerConfig, skip=set())
        if values.get("platform") not in PLATFORMS:
            self.problems.append(f"{path}.platform: one of {', '.join(PLATFORMS)} (got {values.get('platform')!r})")
        if not isinstance(values.get("name"), str) or not _NAME.match(values.get("name", "")):
            self.problems.append(f"{path}.name: required, 1-64 letters, digits, '.', '_' or '-'")
        if "-----BEGIN CERTIFICATE-----" not in str(values.get("ca_pem", "")):
            self.problems.append(f"{path}.ca_pem: required, the PEM CA certificate the broker's certificate chains to")
        if not _TOPIC.match(str(values.get("topic_prefix", "gridfleet"))):
            self.problems.append(f"{path}.topic_prefix: a topic without wildcards or spaces")
        broker: BrokerConfig | None = self._build(path, BrokerConfig, values)
        return broker

    # -- values ----------------------------------------------------------------------------------
    def _values(self, path: str, raw: Mapping[str, Any], cls: type[Any], *, skip: set[str]) -> dict[str, Any]:
        known = {f.name: f for f in fields(cls)}
        self._unknown(path, raw, set(known) | skip)
        values: dict[str, Any] = {}
        defaults = {f.name: f.default for f in fields(cls)}
        for name, value in raw.items():
            if name in skip or name not in known:
                continue
            default = defaults[name]
            where = f"{path}.{name}"
            if name in {"port"}:
                values[name] = self._int(where, value, 1, 65535)
            elif name in {"address", "master_address", "common_address"}:
                values[name] = self._int(where, value, 0 if name == "master_address" else 1, 65519)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    self.problems.append(f"{where}: true or false")
                values[name] = value
            elif isinstance(default, int | float) and not isinstance(default, bool):
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    self.problems.append(f"{where}: a positive number (got {value!r})")
                values[name] = type(default)(value) if isinstance(value, int | float) else default
            elif isinstance(default, tuple):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    self.problems.append(f"{where}: a list of strings")
                values[name] = tuple(value) if isinstance(value, list) else ()
            else:
                if not isinstance(value, str) or not value:
                    self.problems.append(f"{where}: a non-empty string (got {value!r})")
                values[name] = value
        return values

    def _build(self, path: str, cls: type[Any], values: dict[str, Any]) -> Any:
        try:
            return cls(**values)
        except TypeError as exc:  # a required key is missing
            self.problems.append(f"{path}: {exc}".replace("__init__() ", ""))
            return None

    def _int(self, path: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problems.append(f"{path}: an integer {low}..{high} (got {value!r})")
            return low
        return value

    def _object(self, path: str, raw: Any) -> Mapping[str, Any]:
        if not isinstance(raw, Mapping):
            self.problems.append(f"{path}: must be an object")
            return {}
        return raw

    def _list(self, path: str, raw: Any) -> list[Any]:
        if not isinstance(raw, list):
            self.problems.append(f"{path}: must be a list")
            return []
        return raw

    def _unknown(self, path: str, raw: Mapping[str, Any], known: set[str]) -> None:
        for key in sorted(set(raw) - known):
            self.problems.append(f"{path}.{key}: unknown key (known: {', '.join(sorted(known))})")
