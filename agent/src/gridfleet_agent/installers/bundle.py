"""Update bundles as the agent receives them: a tar archive with ``manifest.json`` at its root.

The manifest (docs/protocol/updates.md, section 5) names the bundle type and version, lists the
members with their hashes, and optionally names scripts shipped inside the bundle:

    {"format": "gridfleet-bundle/1", "type": "firmware", "name": "gw-os", "version": "2.1.0",
     "hardware_models": ["GX-100"], "files": {"rootfs.img": {"sha256": "...", "length": 48000000}},
     "install": "scripts/install.sh", "health_check": "scripts/health.sh", "reboot": false}

``reboot`` is an agent extension: true when the new version only runs after a reboot.

Bundles reach the agent only after TUF verified their length and hashes; the checks here guard
against a bundle that was signed but is malformed, not against tampering.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gridfleet_agent.errors import AgentError

__all__ = ["BUNDLE_TYPES", "BundleError", "Manifest", "extract", "read_manifest"]

BUNDLE_TYPES = ("firmware", "patch", "config", "license")
"""The bundle types of the update protocol (docs/protocol/updates.md, section 5)."""


class BundleError(AgentError):
    """The bundle cannot be installed as it is; the message says what is wrong with it."""


@dataclass(frozen=True)
class Manifest:
    type: str
    version: str
    hardware_models: tuple[str, ...] = ()
    install: str | None = None
    health_check: str | None = None
    reboot: bool = False
    files: tuple[tuple[str, str, int], ...] = ()  # (path, sha256, length)

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        if not isinstance(data, dict):
            raise BundleError("manifest.json must hold a JSON object")
        kind, version = data.get("type"), data.get("version")
        if kind not in BUNDLE_TYPES:
            raise BundleError(f"manifest type {kind!r} is not one of {sorted(BUNDLE_TYPES)}")
        if not isinstance(version, str) or not version:
            raise BundleError("manifest version must be a non-empty string")
        scripts = {name: data.get(name) for name in ("install", "health_check")}
        for name, script in scripts.items():
            if script is not None and (not isinstance(script, str) or not _is_relative(script)):
                raise BundleError(f"manifest {name} must be a relative path inside the bundle")
        files = data.get("files", {})
        if not isinstance(files, dict) or not all(
            _is_relative(name)
            and isinstance(spec, dict)
            and isinstance(spec.get("sha256"), str)
            and isinstance(spec.get("length"), int)
            for name, spec in files.items()
        ):
            raise BundleError("manifest files must map relative paths to {sha256, length}")
        models = data.get("hardware_models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise BundleError("manifest hardware_models must be a list of strings")
        return cls(
            type=kind,
            version=version,
            hardware_models=tuple(models),
            install=scripts["install"],
            health_check=scripts["health_check"],
            reboot=bool(data.get("reboot", False)),
            files=tuple((name, spec["sha256"], spec["length"]) for name, spec in files.items()),
        )


def _is_relative(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def read_manifest(bundle: Path) -> Manifest:
    try:
        with tarfile.open(bundle) as archive:
            member = archive.extractfile("manifest.json")
            if member is None:
                raise BundleError("manifest.json is not a regular file")
            return Manifest.from_json(json.loads(member.read()))
    except KeyError as e:
        raise BundleError("bundle has no manifest.json") from e
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"bundle is not a readable tar archive: {e}") from e
    except json.JSONDecodeError as e:
        raise BundleError(f"manifest.json is not JSON: {e}") from e


def extract(bundle: Path, destination: Path) -> Manifest:
    """Unpack the bundle and check its members against the manifest's ``files``.

    tarfile's ``data`` filter refuses absolute paths, ``..`` and device files.
    """
    manifest = read_manifest(bundle)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(bundle) as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"cannot unpack bundle: {e}") from e
    for name, sha256, length in manifest.files:
        member = destination / name
        if not member.is_file():
            raise BundleError(f"{name} is listed in the manifest but missing from the bundle")
        digest = hashlib.sha256()
        with member.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if member.stat().st_size != length or digest.hexdigest() != sha256:
            raise BundleError(f"{name} does not match the length and sha256 in the manifest")
    return manifest
