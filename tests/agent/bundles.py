"""Builds update bundles (tar + manifest.json) the way the server's artifact registry ships them."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any


def make_bundle(path: Path, manifest: dict[str, Any], files: dict[str, str | bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in {"manifest.json": json.dumps(manifest), **(files or {})}.items():
            data = content.encode() if isinstance(content, str) else content
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
        directory / f"firmware-{version}.tar.gz", {"type": "firmware", "version": version, **manifest}, files
    )
