"""Update bundles as the agent receives them: a tar archive with ``manifest.json`` at its root.

The manifest names the bundle type and version and, optionally, scripts shipped inside the bundle:

    {"type": "firmware", "version": "2.1.0", "hardware_models": ["gw-1000"],
     "install": "install.sh", "health_check": "health-check.sh", "reboot": false}

Bundles reach the agent only after TUF verified their length and hashes; the checks here guard
against a bundle that was signed but is malformed, not against tampering.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

BUNDLE_TYPES = frozenset({"firmware", "patch", "config", "license"})


class BundleError(Exception):
    """The bundle cannot be installed as it is; the message says what is wrong with it."""


@dataclass(frozen=True)
class Manifest:
    type: str
    version: str
    hardware_models: tuple[str, ...] = ()
    install: str | None = None
    health_check: str | None = None
    reboot: bool = False

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


def extract(bundle: Path, destination: Path) -> None:
    """Unpack the bundle; tarfile's ``data`` filter refuses absolute paths, ``..`` and device files."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(bundle) as archive:
            archive.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"cannot unpack bundle: {e}") from e
