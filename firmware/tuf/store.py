"""The published metadata directory: versioned files written once, timestamp.json replaced atomically.

The directory is what `/tuf/metadata/` serves (Django in the embedded default, nginx or a CDN in
production), so everything in it must be safe to cache by name: `N.role.json` never changes once
written and only `timestamp.json` is rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PublishedFileExistsError
from .layout import TIMESTAMP


class MetadataStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, role: str, version: int | None = None) -> Path:
        if role == TIMESTAMP:
            return self.directory / "timestamp.json"
        return self.directory / f"{version}.{role}.json"

    def exists(self, role: str, version: int) -> bool:
        return self.path(role, version).exists()

    def write_versioned(self, role: str, version: int, data: bytes) -> None:
        path = self.path(role, version)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        try:
            # link() fails if the name exists: a published N.role.json is never replaced, and
            # readers never see a half-written file.
            os.link(tmp, path)
        except FileExistsError as e:
            raise PublishedFileExistsError(f"{path.name} is already published") from e
        finally:
            tmp.unlink()

    def write_timestamp(self, data: bytes) -> None:
        path = self.path(TIMESTAMP)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def read(self, role: str, version: int | None = None) -> bytes:
        return self.path(role, version).read_bytes()
