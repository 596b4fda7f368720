"""The `csip` section of the signed configuration (or the local `[csip]` fallback): where the
utility server is, the utility-link identity (certificate and key, separate from the fleet
identity) and which field devices make the DER."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridfleet_agent.errors import AgentError

MAX_PIN = 999_999  # the 6-digit registration PIN (IEEE 2030.5 Registration)


class CsipConfigError(AgentError, ValueError):
    code = "csip_config"


@dataclass(frozen=True)
class DerDevice:
    """A field device (by its key in the field stack) that takes the utility's controls."""

    field_device: str
    rated_w: float  # nameplate WMax, to turn a watt limit into WMaxLimPct


@dataclass(frozen=True)
class CsipConfig:
    server_url: str
    certificate: Path
    key: Path
    ca_bundle: Path
    der: tuple[DerDevice, ...]
    dcap_path: str = "/dcap"
    pin: int | None = None  # the Registration PIN the installer was given; checked against the server's
    post_rate: int = 300
    check_hostname: bool = True
    # Seconds the inverter's own reversion timer keeps a limit without a rewrite: a gateway that
    # dies mid-event does not curtail forever (0 = no timer).
    revert_after_s: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path | None = None) -> CsipConfig:
        problems: list[str] = []
        url = data.get("server_url")
        if not isinstance(url, str) or not url.startswith("https://"):
            problems.append("csip.server_url: required, an https:// URL (IEEE 2030.5 is mutual TLS)")

        def path(name: str) -> Path:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                problems.append(f"csip.{name}: required, a file path")
                return Path()
            p = Path(value)
            return p if p.is_absolute() or base is None else base / p

        certificate, key, ca_bundle = path("certificate"), path("key"), path("ca_bundle")
        der: list[DerDevice] = []
        for i, raw in enumerate(data.get("der") or []):
            if not isinstance(raw, Mapping) or not isinstance(raw.get("field_device"), str):
                problems.append(f"csip.der[{i}].field_device: required, a field device key")
                continue
            rated = raw.get("rated_w")
            if isinstance(rated, bool) or not isinstance(rated, int | float) or rated <= 0:
                problems.append(f"csip.der[{i}].rated_w: required, the nameplate W (> 0)")
                continue
            der.append(DerDevice(raw["field_device"], float(rated)))
        if not der:
            problems.append("csip.der: name at least one field device that takes the utility's controls")
        pin = data.get("pin")
        if pin is not None and (isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= MAX_PIN):
            problems.append("csip.pin: the 6-digit registration PIN")
        if problems:
            raise CsipConfigError("; ".join(problems))
        return cls(
            server_url=str(url).rstrip("/"),
            certificate=certificate,
            key=key,
            ca_bundle=ca_bundle,
            der=tuple(der),
            dcap_path=str(data.get("dcap_path", "/dcap")),
            pin=pin,
            post_rate=int(data.get("post_rate", 300)),
            check_hostname=bool(data.get("check_hostname", True)),
            revert_after_s=int(data.get("revert_after_s", 0)),
        )
