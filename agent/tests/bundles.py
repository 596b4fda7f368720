"""Builds update bundles (tar + manifest.json, docs/protocol/updates.md section 5) as the server ships them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def make_bundle(path: Path, manifest: dict[str, Any], files: dict[str, str | bytes] | None = None) -> Path:
    """Write a bundle; the manifest's ``files`` list is computed from ``files`` unless given."""
    members = {
        name: content.encode() if isinstance(content, str) else content for name, content in (files or {}).items()
    }
    manifest = {
        "format": "gridfleet-bundle/1",
        "name": "gw-os",
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)} for name, data in members.items()
        },
        **manifest,
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def firmware_bundle(directory: Path, version: str, *, health_check: str | None = None, **manifest: Any) -> Path:
    files: dict[str, str | bytes] = {"app.txt": f"application {version}\n"}
    if health_check is not None:
        files["health-check.sh"] = health_check
        manifest["health_check"] = "health-check.sh"
    return make_bundle(
        directory / f"firmware-{version}.tar.gz",
        {"type": "firmware", "version": version, "hardware_models": ["GF-100"], **manifest},
        files,
    )
