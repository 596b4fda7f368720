"""License installer: verify the server-signed license, install it, expose its limits.

A license bundle holds ``license.json``::

    {"payload": "<base64 of the license JSON bytes>", "signature": "<base64 ECDSA-SHA256 (DER)>"}

The payload is ``{"serial", "license_id", "not_before", "not_after", "limits": {...}}``; the
signature covers the decoded payload bytes exactly (nothing is re-serialised), made with the
server's license key, whose public key the agent is configured with. The field protocol stack
reads the limits through ``read_active_license`` / ``License.limits``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gridfleet_agent.installers.bundle import BundleError, extract
from gridfleet_agent.installers.runner import InstallError, InstallJob
from gridfleet_agent.installers.slots import SlotStore


class LicenseError(Exception):
    """The license file is not a valid license for this gateway; the message says why."""


@dataclass(frozen=True)
class License:
    serial: str
    license_id: str
    not_before: datetime
    not_after: datetime
    limits: dict[str, Any]

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


def verify_license(document: bytes, public_key_pem: bytes, *, serial: str) -> License:
    """Check the signature and the serial; return the license (validity is checked by the caller)."""
    try:
        envelope = json.loads(document)
        payload = base64.b64decode(envelope["payload"], validate=True)
        signature = base64.b64decode(envelope["signature"], validate=True)
    except (json.JSONDecodeError, KeyError, TypeError, binascii.Error) as e:
        raise LicenseError("license.json must hold base64 'payload' and 'signature'") from e
    key = serialization.load_pem_public_key(public_key_pem)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:
            raise LicenseError(f"unsupported license key type {type(key).__name__}")
    except InvalidSignature as e:
        raise LicenseError("license signature does not verify with the configured license key") from e
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as e:
        raise LicenseError("license payload is not JSON") from e
    if not isinstance(data, dict) or not isinstance(data.get("limits", {}), dict):
        raise LicenseError("license payload must be an object with an object 'limits'")
    if data.get("serial") != serial:
        raise LicenseError(f"license is for gateway {data.get('serial')!r}, not {serial!r}")
    return License(
        serial=serial,
        license_id=str(data.get("license_id", "")),
        not_before=_parse_time(data.get("not_before"), "not_before"),
        not_after=_parse_time(data.get("not_after"), "not_after"),
        limits=dict(data.get("limits", {})),
    )


def read_active_license(root: Path, public_key_pem: bytes, *, serial: str) -> License | None:
    """The installed license if there is one and it verifies (re-checked: the disk is not trusted)."""
    path = root / "current" / "license.json"
    if not path.exists():
        return None
    return verify_license(path.read_bytes(), public_key_pem, serial=serial)


class LicenseInstaller:
    def __init__(self, root: Path, *, public_key_pem: bytes, serial: str) -> None:
        self.slots = SlotStore(root)
        self._public_key_pem = public_key_pem
        self._serial = serial

    def active_version(self) -> str | None:
        return self.slots.active_version()

    def limits(self) -> dict[str, Any]:
        """Limits of the installed, currently valid license; empty without one."""
        active = read_active_license(self.slots.root, self._public_key_pem, serial=self._serial)
        if active is None or not active.is_valid_at(datetime.now(UTC)):
            return {}
        return active.limits

    def stage(self, job: InstallJob) -> None:
        slot = self.slots.prepare(job)
        try:
            extract(Path(job.bundle_path), slot)
            document = (slot / "license.json").read_bytes()
        except (BundleError, FileNotFoundError) as e:
            raise InstallError("invalid_bundle", f"license bundle: {e}") from e
        try:
            lic = verify_license(document, self._public_key_pem, serial=self._serial)
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
