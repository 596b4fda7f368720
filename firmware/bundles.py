"""Bundle format (docs/protocol/updates.md section 5): a tar archive with manifest.json on top.

Pure functions: checking an uploaded bundle against what the uploader declared, and building the
server's own bundles (config, license) byte-for-byte reproducibly.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import IO, Any

import jsonschema

BUNDLE_FORMAT = "gridfleet-bundle/1"
MANIFEST_NAME = "manifest.json"
_CHUNK = 1024 * 1024

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "type", "name", "version", "files"],
    "properties": {
        "format": {"const": BUNDLE_FORMAT},
        "type": {"enum": ["firmware", "patch", "config", "license"]},
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
        "version": {"type": "string", "minLength": 1, "maxLength": 64},
        "hardware_models": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
        "files": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["sha256", "length"],
                "properties": {
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    "length": {"type": "integer", "minimum": 0},
                },
            },
        },
        "install": {"type": "string"},
        "health_check": {"type": "string"},
    },
}


class BundleError(ValueError):
    """The bundle is not what it claims to be; the message says what does not match."""


@dataclass(frozen=True)
class CheckedBundle:
    manifest: dict[str, Any]
    sha256: str
    size: int


def _digest(fileobj: IO[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    fileobj.seek(0)
    while chunk := fileobj.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return h.hexdigest(), size


def _safe_member_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts and "" not in parts


def check_bundle(
    fileobj: IO[bytes],
    *,
    declared_type: str,
    declared_name: str | None = None,
    declared_version: str | None = None,
    declared_size: int | None = None,
    declared_sha256: str | None = None,
) -> CheckedBundle:
    """Verify a bundle (seekable file) against its declaration and its own manifest."""
    sha256, size = _digest(fileobj)
    if declared_size is not None and declared_size != size:
        raise BundleError(f"declared size {declared_size} bytes but received {size} bytes")
    if declared_sha256 is not None and declared_sha256.lower() != sha256:
        raise BundleError(f"declared sha256 {declared_sha256} but the upload hashes to {sha256}")
    try:
        # Closed in the finally below, after the checks that may raise.
        archive = tarfile.open(fileobj=fileobj, mode="r:*")  # noqa: SIM115
    except tarfile.TarError as e:
        raise BundleError(f"not a tar archive: {e}") from e
    try:
        manifest = _read_manifest(archive)
        _check_manifest(manifest, declared_type, declared_name, declared_version)
        _check_members(archive, manifest)
    finally:
        archive.close()
        fileobj.seek(0)
    return CheckedBundle(manifest=manifest, sha256=sha256, size=size)


def _read_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = archive.getmember(MANIFEST_NAME)
    except KeyError as e:
        raise BundleError("the bundle has no manifest.json at its top level") from e
    extracted = archive.extractfile(member)
    if extracted is None:
        raise BundleError("manifest.json is not a regular file")
    try:
        manifest = json.loads(extracted.read())
    except ValueError as e:
        raise BundleError(f"manifest.json is not valid JSON: {e}") from e
    try:
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise BundleError(f"manifest.json at {where}: {e.message}") from e
    return dict(manifest)


def _check_manifest(
    manifest: dict[str, Any], declared_type: str, declared_name: str | None, declared_version: str | None
) -> None:
    if manifest["type"] != declared_type:
        raise BundleError(f"declared type {declared_type!r} but the manifest says {manifest['type']!r}")
    if declared_name is not None and manifest["name"] != declared_name:
        raise BundleError(f"declared name {declared_name!r} but the manifest says {manifest['name']!r}")
    if declared_version is not None and manifest["version"] != declared_version:
        raise BundleError(f"declared version {declared_version!r} but the manifest says {manifest['version']!r}")
    for script in ("install", "health_check"):
        if script in manifest and manifest[script] not in manifest["files"]:
            raise BundleError(f"manifest {script} script {manifest[script]!r} is not listed in files")


def _check_members(archive: tarfile.TarFile, manifest: dict[str, Any]) -> None:
    expected: dict[str, dict[str, Any]] = manifest["files"]
    seen: set[str] = set()
    for member in archive.getmembers():
        name = member.name.removeprefix("./")
        if member.isdir() or name == MANIFEST_NAME:
            continue
        if not member.isfile():
            raise BundleError(f"{name}: only regular files and directories are allowed in a bundle")
        if not _safe_member_name(name):
            raise BundleError(f"{name}: member paths must be relative without '..'")
        if name not in expected:
            raise BundleError(f"{name} is in the archive but not listed in manifest files")
        h = hashlib.sha256()
        extracted = archive.extractfile(member)
        assert extracted is not None  # isfile() above
        length = 0
        while chunk := extracted.read(_CHUNK):
            h.update(chunk)
            length += len(chunk)
        if length != expected[name]["length"]:
            raise BundleError(f"{name} is {length} bytes but the manifest says {expected[name]['length']}")
        if h.hexdigest() != expected[name]["sha256"]:
            raise BundleError(f"{name} does not match its sha256 in the manifest")
        seen.add(name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError(f"listed in the manifest but missing from the archive: {', '.join(missing)}")


def build_bundle(
    *, type: str, name: str, version: str, files: dict[str, bytes], hardware_models: list[str] | None = None
) -> bytes:
    """A reproducible bundle: sorted members, zero mtimes and owners, so equal input hashes equal."""
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "type": type,
        "name": name,
        "version": version,
        "files": {
            path: {"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}
            for path, data in sorted(files.items())
        },
    }
    if hardware_models is not None:
        manifest["hardware_models"] = hardware_models
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        members = {MANIFEST_NAME: json.dumps(manifest, indent=2, sort_keys=True).encode(), **files}
        for path in [MANIFEST_NAME, *sorted(files)]:
            info = tarfile.TarInfo(path)
            info.size = len(members[path])
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(members[path]))
    return out.getvalue()
