"""A small TUF repository built with python-tuf's Metadata API and served over loopback HTTP.

Test helper: it signs real metadata with real keys, so the client under test runs every TUF check.
Tests tamper with it the way an attacker who controls the web server would.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

TOP_LEVEL_ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)


def _expiry(days: float = 7) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


class TufRepository:
    """Signs top-level metadata and keeps every published file in ``files`` (URL path -> bytes)."""

    def __init__(self) -> None:
        self.signers = {role: CryptoSigner.generate_ecdsa() for role in TOP_LEVEL_ROLES}
        self.root = Metadata(Root(expires=_expiry(365), consistent_snapshot=True))
        for role, signer in self.signers.items():
            self.root.signed.add_key(signer.public_key, role)
        self.targets = Metadata(Targets(expires=_expiry(30)))
        self.snapshot = Metadata(Snapshot(expires=_expiry(7)))
        self.timestamp = Metadata(Timestamp(expires=_expiry(1)))
        self.files: dict[str, bytes] = {}
        self.publish_root()
        self.publish()

    def _sign(self, md: Metadata, role: str) -> bytes:
        md.signatures.clear()
        md.sign(self.signers[role])
        return md.to_bytes(JSONSerializer(compact=True))

    @property
    def trusted_root(self) -> bytes:
        return self.files["/metadata/1.root.json"]

    def publish_root(self) -> None:
        data = self._sign(self.root, Root.type)
        self.files[f"/metadata/{self.root.signed.version}.root.json"] = data

    def rotate_timestamp_key(self) -> None:
        """Root N+1 replaces the timestamp key, signed by the (unchanged) root key."""
        old = self.signers[Timestamp.type]
        self.root.signed.revoke_key(old.public_key.keyid, Timestamp.type)
        self.signers[Timestamp.type] = CryptoSigner.generate_ecdsa()
        self.root.signed.add_key(self.signers[Timestamp.type].public_key, Timestamp.type)
        self.root.signed.version += 1
        self.publish_root()

    def add_target(self, path: str, data: bytes) -> TargetFile:
        target = TargetFile.from_data(path, data, ["sha256"])
        self.targets.signed.targets[path] = target
        dirname, sep, basename = path.rpartition("/")
        self.files[f"/targets/{dirname}{sep}{target.hashes['sha256']}.{basename}"] = data
        return target

    def target_url_path(self, path: str) -> str:
        target = self.targets.signed.targets[path]
        dirname, sep, basename = path.rpartition("/")
        return f"/targets/{dirname}{sep}{target.hashes['sha256']}.{basename}"

    def publish(self, *, timestamp_expires: datetime | None = None) -> None:
        """Bump and sign targets, then snapshot, then timestamp last, as a real publisher does."""
        targets = self.targets.signed
        targets.version += 1
        self.files[f"/metadata/{targets.version}.targets.json"] = self._sign(self.targets, Targets.type)
        self.snapshot.signed.meta[f"{Targets.type}.json"] = MetaFile(version=targets.version)
        self.snapshot.signed.version += 1
        self.publish_snapshot_as_is(timestamp_expires=timestamp_expires)

    def publish_snapshot_as_is(self, *, timestamp_expires: datetime | None = None) -> None:
        """Sign the snapshot with its current version (tests set old versions) and a new timestamp."""
        snapshot = self.snapshot.signed
        self.files[f"/metadata/{snapshot.version}.snapshot.json"] = self._sign(self.snapshot, Snapshot.type)
        timestamp = self.timestamp.signed
        timestamp.snapshot_meta = MetaFile(version=snapshot.version)
        timestamp.version += 1
        timestamp.expires = timestamp_expires or _expiry(1)
        self.files["/metadata/timestamp.json"] = self._sign(self.timestamp, Timestamp.type)


class RepositoryServer:
    """Serves a ``TufRepository``'s files with Range support, counting requests per path.

    ``truncate_once`` holds paths whose next full response is cut off mid-body, to exercise
    resumed downloads.
    """

    def __init__(self, repository: TufRepository) -> None:
        self.repository = repository
        self.requests: Counter[str] = Counter()
        self.range_requests: list[tuple[str, str]] = []
        self.truncate_once: set[str] = set()
        self.headers_seen: list[dict[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server.requests[self.path] += 1
                server.headers_seen.append(dict(self.headers))
                data = server.repository.files.get(self.path)
                if data is None:
                    # Like a busy web server: the 404 page arrives a moment after the headers, so a
                    # client that reuses the connection without reading it would misread the next answer.
                    page = b"<!DOCTYPE html>\n<html><body><h1>Not Found</h1></body></html>\n"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(0.05)
                    self.wfile.write(page)
                    return
                start = 0
                if range_header := self.headers.get("Range"):
                    server.range_requests.append((self.path, range_header))
                    start = int(range_header.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if self.path in server.truncate_once and not start:
                    server.truncate_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.url}/targets/"

    @contextmanager
    def running(self) -> Iterator[RepositoryServer]:
        thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()
