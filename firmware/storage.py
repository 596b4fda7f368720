"""Content-addressed blob storage through Django's storage API (local files or S3 by setting).

A blob's name is its SHA-256, so storing the same bytes twice keeps one copy and nothing is ever
rewritten in place.
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import IO

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from .models import Blob

_CHUNK = 1024 * 1024


def blob_storage() -> Storage:
    return storages["default"]


def store_file(fileobj: IO[bytes], *, sha256: str | None = None) -> Blob:
    """Store a seekable file (hashing it first unless the caller already did)."""
    if sha256 is None:
        h = hashlib.sha256()
        fileobj.seek(0)
        while chunk := fileobj.read(_CHUNK):
            h.update(chunk)
        sha256 = h.hexdigest()
    fileobj.seek(0, 2)
    size = fileobj.tell()
    fileobj.seek(0)
    blob, _ = Blob.objects.get_or_create(sha256=sha256, defaults={"size": size})
    storage = blob_storage()
    if not storage.exists(blob.storage_name):
        saved = storage.save(blob.storage_name, File(fileobj))
        if saved != blob.storage_name:
            # Another writer stored the same content first; ours is a duplicate.
            storage.delete(saved)
    return blob


def store_bytes(data: bytes) -> Blob:
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as f:
        f.write(data)
        return store_file(f, sha256=hashlib.sha256(data).hexdigest())


def store_many(datas: list[bytes]) -> list[Blob]:
    """Store many small contents (assignment documents) with one database round trip per batch."""
    by_hash = {hashlib.sha256(data).hexdigest(): data for data in datas}
    existing = set(Blob.objects.filter(sha256__in=by_hash).values_list("sha256", flat=True))
    storage = blob_storage()
    new = []
    for sha256, data in by_hash.items():
        if sha256 in existing:
            continue
        blob = Blob(sha256=sha256, size=len(data))
        if not storage.exists(blob.storage_name):
            storage.save(blob.storage_name, ContentFile(data))
        new.append(blob)
    Blob.objects.bulk_create(new, ignore_conflicts=True, batch_size=2000)
    blobs = Blob.objects.in_bulk(list(by_hash))
    return [blobs[hashlib.sha256(data).hexdigest()] for data in datas]


def open_blob(blob: Blob) -> IO[bytes]:
    return blob_storage().open(blob.storage_name, "rb")
