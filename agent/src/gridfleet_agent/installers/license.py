"""License installer: verify the server-signed license, install it, expose its limits.

A license bundle holds ``license.json`` (docs/protocol/updates.md, section 5)::

    {"signed": {"format": "gridfleet-license/1", "serial": "GW-000123", "version": 3,
                "not_before": "...", "not_after": "...", "limits": {...}, "features": [...]},
     "signatures": [{"keyid": "...", "sig": "<hex>"}]}

``sig`` is made over the canonical JSON of ``signed`` (as TUF signs metadata) with the license
key the server names in the gateway's update channel. TUF already authenticated the download;
this signature lets the gateway, and the protocol stack reading ``limits``, re-check the license
offline at every start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signature

from gridfleet_agent.errors import AgentError
from gridfleet_agent.installers.bundle import BundleError, extract
from gridfleet_agent.installers.runner import InstallError, InstallJob
from gridfleet_agent.installers.slots import SlotStore

if TYPE_CHECKING:
    from gridfleet_agent.installers.registry import InstallerContext

LICENSE_FORMAT = "gridfleet-license/1"

LicenseKeyProvider = Callable[[], dict[str, Any] | None]
"""The license public key in TUF key format (from the update channel), or None if not known yet."""


class LicenseError(AgentError):
    """The license file is not a valid license for this gateway; the message says why."""


@dataclass(frozen=True)
class License:
    serial: str
    version: int
    not_before: datetime
    not_after: datetime
    limits: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = ()

    def is_valid_at(self, when: datetime) -> bool:
        return self.not_before <= when < self.not_after


def _parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise LicenseError(f"license {name} must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise LicenseError(f"license {name} {value!r} is not an RFC 3339 time") from e
    if parsed.tzinfo is None:
        raise LicenseError(f"license {name} has no UTC offset")
    return parsed.astimezone(UTC)


def verify_license(document: dict[str, Any], public_key: dict[str, Any], *, serial: str) -> License:
    """Check the signature and the serial; the caller decides what validity period it needs."""
    signed, signatures = document.get("signed"), document.get("signatures")
    if not isinstance(signed, dict) or not isinstance(signatures, list):
        raise LicenseError("license.json must hold 'signed' and 'signatures'")
    keyid = public_key.get("keyid", "")
    try:
        key = Key.from_dict(keyid, {k: v for k, v in public_key.items() if k != "keyid"})
    except (KeyError, TypeError, ValueError) as e:
        raise LicenseError(f"the license public key is not a usable TUF key: {e}") from e
    data = (encode_canonical(signed) or "").encode()
    for entry in signatures:
        if isinstance(entry, dict) and entry.get("keyid") == keyid and isinstance(entry.get("sig"), str):
            try:
                key.verify_signature(Signature(keyid, entry["sig"]), data)
                break
            except (UnverifiedSignatureError, VerificationError):
                continue
    else:
        raise LicenseError("license signature does not verify with the license key of the update channel")
    if signed.get("format") != LICENSE_FORMAT:
        raise LicenseError(f"license format {signed.get('format')!r} is not {LICENSE_FORMAT}")
    if signed.get("serial") != serial:
        raise LicenseError(f"license is for gateway {signed.get('serial')!r}, not {serial!r}")
    limits, features = signed.get("limits", {}), signed.get("features", [])
    if not isinstance(limits, dict) or not isinstance(features, list):
        raise LicenseError("license limits must be an object and features a list")
    return License(
        serial=serial,
        version=int(signed.get("version", 0)),
        not_before=_parse_time(signed.get("not_before"), "not_before"),
        not_after=_parse_time(signed.get("not_after"), "not_after"),
        limits=limits,
        features=tuple(str(f) for f in features),
    )


class LicenseInstaller:
    def __init__(self, root: Path, *, public_key: LicenseKeyProvider, serial: str) -> None:
        self.slots = SlotStore(root)
        self._public_key = public_key
        self._serial = serial

    @property
    def license_file(self) -> Path:
        return self.slots.current_link / "license.json"

    def active_version(self) -> str | None:
        return self.slots.active_version()

    def active_license(self) -> License | None:
        """The installed license, re-verified (the disk is not trusted), if valid right now."""
        key = self._public_key()
        if key is None or not self.license_file.exists():
            return None
        try:
            active = verify_license(_read_json(self.license_file), key, serial=self._serial)
        except LicenseError:
            return None
        return active if active.is_valid_at(datetime.now(UTC)) else None

    def limits(self) -> dict[str, Any]:
        """Limits of the installed, currently valid license; empty without one."""
        active = self.active_license()
        return active.limits if active else {}

    def stage(self, job: InstallJob) -> None:
        slot = self.slots.prepare(job)
        key = self._public_key()
        if key is None:
            raise InstallError("invalid_license", "no license key known yet (update channel not fetched)")
        try:
            extract(Path(job.bundle_path), slot)
            lic = verify_license(_read_json(slot / "license.json"), key, serial=self._serial)
        except (BundleError, FileNotFoundError, ValueError) as e:
            raise InstallError("invalid_bundle", f"license bundle: {e}") from e
        except LicenseError as e:
            raise InstallError("invalid_license", str(e)) from e
        if lic.not_after <= datetime.now(UTC):
            raise InstallError("invalid_license", f"license expired at {lic.not_after.isoformat()}")
        self.slots.seal(job)

    def needs_reboot(self, job: InstallJob) -> bool:
        return False

    def switch(self, job: InstallJob) -> None:
        self.slots.switch(job)

    def health_check(self, job: InstallJob) -> None:
        """A verified license needs no further check; the protocol stack reads it on its next poll."""

    def commit(self, job: InstallJob) -> None:
        """Nothing to undo any more."""

    def rollback(self, job: InstallJob) -> None:
        self.slots.rollback(job)

    def discard(self, job: InstallJob) -> None:
        self.slots.discard(job)


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} must hold a JSON object")
    return data


def create(context: InstallerContext) -> LicenseInstaller:
    """The ``license`` entry point: slots under ``<state_dir>/license``, checked against the gateway's serial."""
    return LicenseInstaller(context.state_dir / "license", public_key=context.license_key, serial=context.serial)
