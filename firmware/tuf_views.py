"""Serving the repository: `/tuf/metadata/<file>` and `/tuf/targets/<path>`.

Metadata files are public and plain files (nginx or a CDN can serve the same directory).
Targets are content-addressed blobs named `<dir>/<sha256>.<file>` (consistent snapshots); those
under `devices/<token>/` go only to the gateway that owns the token.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from . import conf
from .gateway_auth import authenticated_gateway
from .models import Artifact, Blob, DeviceBundle
from .storage import blob_storage, open_blob

METADATA_NAME = re.compile(r"^(timestamp|[1-9][0-9]*\.[a-z][a-z0-9-]*)\.json$")
TARGET_NAME = re.compile(r"^(?P<sha256>[0-9a-f]{64})\.(?P<name>[^/]+)$")
IMMUTABLE = "public, max-age=31536000, immutable"
# Short enough that a new timestamp reaches clients behind a CDN within a poll interval.
TIMESTAMP_CACHE = "public, max-age=10"
_CHUNK = 256 * 1024


@lru_cache(maxsize=512)
def _gzipped(path: Path) -> bytes:
    # Versioned metadata never changes once written, so its compressed form can be kept.
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)


def _accepts_gzip(request: HttpRequest) -> bool:
    return any(part.split(";")[0].strip() == "gzip" for part in request.headers.get("Accept-Encoding", "").split(","))


@require_safe
def metadata(request: HttpRequest, name: str) -> HttpResponseBase:
    if not METADATA_NAME.match(name):
        raise Http404("no such metadata file")
    path = conf.tuf_dir() / "metadata" / name
    try:
        # FileResponse closes the handle once the body is sent.
        handle = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError as e:
        # 404, never 403: clients probe N+1.root.json on every refresh and treat 404 as "no newer root".
        raise Http404("no such metadata file") from e
    response: HttpResponseBase
    if name != "timestamp.json" and _accepts_gzip(request):
        # Metadata may be compressed (bins and snapshot shrink a lot); targets never are.
        handle.close()
        response = HttpResponse(_gzipped(path), content_type="application/json")
        response["Content-Encoding"] = "gzip"
    else:
        response = FileResponse(handle, content_type="application/json")
    response["Vary"] = "Accept-Encoding"
    response["Cache-Control"] = TIMESTAMP_CACHE if name == "timestamp.json" else IMMUTABLE
    return response


def _find_blob(request: HttpRequest, directory: str, sha256: str, name: str) -> tuple[Blob, bool] | HttpResponse:
    """The blob to serve and whether it is private to one gateway, or an error response."""
    kind, _, scope = directory.partition("/")
    if kind == "devices" and scope and "/" not in scope:
        gateway = authenticated_gateway(request)
        if gateway is None:
            response = HttpResponse("a gateway bearer token is required for device targets\n", status=401)
            response["WWW-Authenticate"] = "Bearer"
            return response
        bundle = (
            DeviceBundle.objects.filter(
                gateway=gateway, gateway__update_channel__token=scope, blob_id=sha256, filename=name
            )
            .select_related("blob")
            .first()
        )
        if bundle is None:
            raise Http404("no such target")
        return bundle.blob, True
    if kind == "firmware" and scope and "/" not in scope:
        for artifact in Artifact.objects.filter(blob_id=sha256, organization__slug=scope).select_related(
            "blob", "organization"
        ):
            if artifact.target_path == f"{directory}/{name}":
                return artifact.blob, False
    raise Http404("no such target")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, or None when it cannot be satisfied."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        return (max(0, size - length), size - 1) if length > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


def _stream(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


@require_safe
def target(request: HttpRequest, path: str) -> HttpResponseBase:
    directory, _, filename = path.rpartition("/")
    match = TARGET_NAME.match(filename)
    if not directory or not match:
        raise Http404("no such target")
    found = _find_blob(request, directory, match["sha256"], match["name"])
    if isinstance(found, HttpResponse):
        return found
    blob, private = found
    # no-transform: proxies and CDNs must not recompress the bytes either.
    cache_control = ("private" if private else "public") + ", max-age=31536000, immutable, no-transform"
    accel_prefix = settings.GRIDFLEET_TUF_ACCEL_REDIRECT
    if accel_prefix and isinstance(blob_storage(), FileSystemStorage):
        # nginx sends the file (and answers Range requests) from its internal location.
        redirected = HttpResponse(content_type="application/octet-stream")
        redirected["X-Accel-Redirect"] = accel_prefix.rstrip("/") + "/" + blob.storage_name
        redirected["Cache-Control"] = cache_control
        return redirected
    size = blob.size
    start, end, status = 0, size - 1, 200
    if range_header := request.headers.get("Range"):
        wanted = _parse_range(range_header, size)
        if wanted is None:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        start, end, status = wanted[0], wanted[1], HTTPStatus.PARTIAL_CONTENT
    length = max(0, end - start + 1)
    body = _stream(open_blob(blob), start, length) if request.method == "GET" else iter(())
    # Never a Content-Encoding: TUF hashes the bytes as stored, a transparently gzipped body fails.
    streamed = StreamingHttpResponse(body, status=status, content_type="application/octet-stream")
    streamed["Content-Length"] = str(length)
    streamed["Accept-Ranges"] = "bytes"
    streamed["ETag"] = f'"{blob.sha256}"'
    streamed["Cache-Control"] = cache_control
    if status == HTTPStatus.PARTIAL_CONTENT:
        streamed["Content-Range"] = f"bytes {start}-{end}/{size}"
    return streamed
