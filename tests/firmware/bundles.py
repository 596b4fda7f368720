"""Bundles built by hand in tests (independently of firmware.bundles), including broken ones."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Any


def make_bundle(
    *,
    type: str = "firmware",
    name: str = "gw-os",
    version: str = "2.1.0",
    hardware_models: list[str] | None = None,
    files: dict[str, bytes] | None = None,
    manifest_overrides: dict[str, Any] | None = None,
    extra_members: dict[str, bytes] | None = None,
) -> bytes:
    files = (
        files if files is not None else {"rootfs.img": b"root filesystem " * 64, "scripts/install.sh": b"#!/bin/sh\n"}
    )
    manifest: dict[str, Any] = {
        "format": "gridfleet-bundle/1",
        "type": type,
        "name": name,
        "version": version,
        "hardware_models": hardware_models or ["GF-100"],
        "files": {p: {"sha256": hashlib.sha256(d).hexdigest(), "length": len(d)} for p, d in files.items()},
    }
    if "scripts/install.sh" in files:
        manifest["install"] = "scripts/install.sh"
    manifest.update(manifest_overrides or {})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for path, data in {"manifest.json": json.dumps(manifest).encode(), **files, **(extra_members or {})}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()
