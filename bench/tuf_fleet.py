"""Benchmark: the TUF repository for a large fleet (default 100k gateways x 2 bundles each).

Builds and signs the repository with the same code the server uses (firmware.tuf), then measures
what a gateway's python-tuf client downloads, through a fetcher that reads the repository
directory and counts bytes:

    .venv/bin/python bench/tuf_fleet.py [--gateways 100000] [--bit-length N]

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuf.api import exceptions
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from firmware.tuf.bootstrap import generate_offline_keys, initialise
from firmware.tuf.keys import OnlineKeyring
from firmware.tuf.layout import SNAPSHOT, recommended_bit_length
from firmware.tuf.repository import TufRepository

PASSPHRASE = "bench-only"


class CountingFetcher(FetcherInterface):
    """Serves the repository directory like the HTTP endpoints would, counting body bytes."""

    def __init__(self, metadata_dir: Path, targets: dict[str, bytes]) -> None:
        self.metadata_dir = metadata_dir
        self.targets = targets
        self.requests: list[tuple[str, int]] = []
        # What the same metadata costs on the wire when served gzip-compressed (as /tuf/metadata/
        # does for clients sending Accept-Encoding: gzip; timestamp.json is always plain).
        self.gzipped = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        kind, _, name = url.removeprefix("bench://").partition("/")
        data = self.targets.get(name) if kind == "targets" else None
        if kind == "metadata":
            path = self.metadata_dir / name
            data = path.read_bytes() if path.exists() else None
        if data is None:
            self.requests.append((url, 0))
            raise exceptions.DownloadHTTPError("not found", 404)
        self.requests.append((url, len(data)))
        if kind == "metadata":
            self.gzipped += len(data) if name == "timestamp.json" else len(gzip.compress(data))
        return iter([data])

    def take(self) -> tuple[int, int, int, int]:
        """(metadata bytes, target bytes, requests, metadata bytes if gzipped) since the last call."""
        metadata = sum(n for url, n in self.requests if url.startswith("bench://metadata/"))
        total, count, gzipped = sum(n for _, n in self.requests), len(self.requests), self.gzipped
        self.requests.clear()
        self.gzipped = 0
        return metadata, total - metadata, count, gzipped


def bundle_bytes(token: str, version: int) -> bytes:
    return f"config bundle {token} v{version}\n".encode() * 300  # about 10 KB


def target(path: str, data: bytes) -> TargetFile:
    return TargetFile(length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}, path=path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--bit-length", type=int)
    args = parser.parse_args()
    bit_length = args.bit_length or recommended_bit_length(args.gateways)
    work = Path(tempfile.mkdtemp(prefix="tuf-bench-"))

    started = time.perf_counter()
    repo = TufRepository(work / "repo", OnlineKeyring(work / "repo" / "keys", lambda: PASSPHRASE))
    initialise(repo, generate_offline_keys(work / "offline", PASSPHRASE), bit_length=bit_length)
    init_seconds = time.perf_counter() - started

    tokens = [secrets.token_hex(16) for _ in range(args.gateways)]
    bins: dict[str, list[TargetFile]] = defaultdict(list)
    watched = tokens[0]
    watched_targets: dict[str, bytes] = {}
    t0 = time.perf_counter()
    for token in tokens:
        # The assignment document names the bundle; both are device targets.
        bundle = bundle_bytes(token, 1)
        assignment = f'{{"token":"{token}","config":{{"version":"1"}}}}'.encode()
        for name, data in ((f"devices/{token}/config-1.tar", bundle), (f"devices/{token}/assignment.json", assignment)):
            bins[repo.bin_for(name)].append(target(name, data))
            if token == watched:
                watched_targets[name] = data
    build_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = repo.publish(bins=bins)
    sign_seconds = time.perf_counter() - t0
    total_seconds = time.perf_counter() - started

    metadata_dir = repo.store.directory
    bin_sizes = [repo.store.path(name, repo.version(name)).stat().st_size for name in repo.bin_names]
    snapshot_bytes = repo.store.read(SNAPSHOT, repo.version(SNAPSHOT))
    timestamp_size = repo.store.path("timestamp").stat().st_size

    # A gateway's client: cold start, an idle poll, then a poll after its own bundle changed.
    root = (metadata_dir / "1.root.json").read_bytes()
    client_dir = work / "client"
    client_dir.mkdir()
    served = {
        f"devices/{watched}/{hashlib.sha256(d).hexdigest()}.{n.rsplit('/', 1)[1]}": d
        for n, d in watched_targets.items()
    }
    fetcher = CountingFetcher(metadata_dir, served)

    def poll(download: list[str]) -> tuple[int, int, int, int]:
        updater = Updater(
            str(client_dir),
            "bench://metadata/",
            str(client_dir),
            "bench://targets/",
            fetcher=fetcher,
            bootstrap=root if not (client_dir / "root.json").exists() else None,
        )
        updater.refresh()
        for name in download:
            info = updater.get_targetinfo(name)
            assert info is not None, name
            updater.download_target(info, str(client_dir / "download"))
        return fetcher.take()

    cold = poll(list(watched_targets))
    idle = poll([])

    new_bundle = bundle_bytes(watched, 2)
    new_assignment = f'{{"token":"{watched}","config":{{"version":"2"}}}}'.encode()
    changed = {f"devices/{watched}/config-2.tar": new_bundle, f"devices/{watched}/assignment.json": new_assignment}
    touched = {repo.bin_for(name) for name in [*changed, f"devices/{watched}/config-1.tar"]}
    t0 = time.perf_counter()
    new_bins = {}
    for name in touched:
        current = repo.load(name).signed.targets
        current.pop(f"devices/{watched}/config-1.tar", None)
        for path, data in changed.items():
            if repo.bin_for(path) == name:
                current[path] = target(path, data)
        new_bins[name] = list(current.values())
    repo.publish(bins=new_bins)
    publish_one_seconds = time.perf_counter() - t0
    served.update(
        {f"devices/{watched}/{hashlib.sha256(d).hexdigest()}.{n.rsplit('/', 1)[1]}": d for n, d in changed.items()}
    )
    # The agent refreshes, reads its new assignment and fetches the bundle it names.
    after_change = poll(list(changed))

    kb = 1024
    snapshot_gz = len(gzip.compress(snapshot_bytes))
    lines = [
        ("gateways", f"{args.gateways:,} x 2 device targets ({2 * args.gateways:,} targets)"),
        ("hash bins", f"{len(bin_sizes)} (bit length {bit_length})"),
        (
            "total time",
            f"{total_seconds:.1f} s (init {init_seconds:.1f} s, hash/group {build_seconds:.1f} s, "
            f"sign+write {len(result.bins)} bins + snapshot + timestamp {sign_seconds:.1f} s)",
        ),
        ("bin size", f"mean {statistics.mean(bin_sizes) / kb:.1f} KB, max {max(bin_sizes) / kb:.1f} KB"),
        ("snapshot size", f"{len(snapshot_bytes) / kb:.1f} KB ({snapshot_gz / kb:.1f} KB gzipped)"),
        ("timestamp size", f"{timestamp_size} B"),
        (
            "cold start (first poll)",
            f"{cold[0] / kb:.1f} KB metadata ({cold[3] / kb:.1f} KB gzipped) + {cold[1] / kb:.1f} KB targets, "
            f"{cold[2]} requests",
        ),
        ("idle poll", f"{idle[0] + idle[1]} B in {idle[2]} requests (root N+1 probe 404 + timestamp)"),
        (
            "poll after own bundle changed",
            f"{after_change[0] / kb:.1f} KB metadata (timestamp, snapshot, changed "
            f"bins; {after_change[3] / kb:.1f} KB gzipped) + {after_change[1] / kb:.1f} KB targets "
            f"(assignment + bundle), {after_change[2]} requests",
        ),
        (
            "publish one gateway's change",
            f"{publish_one_seconds * 1000:.0f} ms ({len(touched)} bins + snapshot + timestamp)",
        ),
    ]
    for label, value in lines:
        print(f"{label:<30}{value}")


if __name__ == "__main__":
    main()
