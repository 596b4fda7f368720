"""TUF client operations on a local trusted-metadata directory.

The functions here are what the daemon's update check uses, and ``main`` exposes them with the
client-test interface used by TUF conformance suites::

    gridfleet-agent tuf-client --metadata-dir DIR init TRUSTED_ROOT
    gridfleet-agent tuf-client --metadata-dir DIR --metadata-url URL refresh
    gridfleet-agent tuf-client --metadata-dir DIR --metadata-url URL --target-name P [--target-name P2]
        --target-base-url URL --target-dir DIR download

Exit status 0 on success, 1 on any failure. The metadata directory holds only trusted role files
named ``ROLE.json`` (plus ngclient's ``root_history/``), since test suites read every ``*.json``
there as trusted metadata.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.ngclient import Updater
from tuf.ngclient.fetcher import FetcherInterface

from gridfleet_agent.errors import AgentError
from gridfleet_agent.fetcher import AgentFetcher
from gridfleet_agent.fsutil import atomic_write

logger = logging.getLogger(__name__)


class TufClientError(AgentError):
    """A TUF operation failed; the message says which step and why."""


class TargetNotFoundError(TufClientError):
    """The repository's trusted metadata does not list the requested target."""


@dataclass(frozen=True)
class DownloadedTarget:
    name: str
    path: Path
    from_cache: bool


def init_trust(metadata_dir: Path, trusted_root: bytes) -> None:
    """Store ``trusted_root`` as the client's root of trust, without any network access."""
    try:
        root = Metadata[Root].from_bytes(trusted_root)
    except Exception as e:  # python-tuf raises several unrelated types for bad input
        raise TufClientError(f"trusted root is not valid root metadata: {e}") from e
    if root.signed.type != Root.type:
        raise TufClientError("trusted root file does not contain root metadata")
    atomic_write(metadata_dir / "root.json", trusted_root)


def open_updater(
    metadata_dir: Path,
    metadata_url: str,
    *,
    target_dir: Path | None = None,
    target_base_url: str | None = None,
    fetcher: FetcherInterface | None = None,
) -> Updater:
    """An ngclient Updater over the cached trusted root; ``refresh()`` has not run yet."""
    if not (metadata_dir / "root.json").exists():
        raise TufClientError(f"{metadata_dir} has no trusted root.json; run init first")
    try:
        return Updater(
            metadata_dir=str(metadata_dir),
            metadata_base_url=metadata_url,
            target_dir=str(target_dir) if target_dir else None,
            target_base_url=target_base_url,
            fetcher=fetcher or AgentFetcher(),
            bootstrap=None,
        )
    except (OSError, exceptions.RepositoryError) as e:
        raise TufClientError(f"cannot load trusted root from {metadata_dir}: {e}") from e


def refresh(updater: Updater) -> None:
    """Update top-level metadata (root, timestamp, snapshot, targets), verifying every step."""
    try:
        updater.refresh()
    except (OSError, exceptions.RepositoryError, exceptions.DownloadError) as e:
        raise TufClientError(f"metadata refresh failed: {type(e).__name__}: {e}") from e


def download_targets(updater: Updater, target_names: Sequence[str]) -> list[DownloadedTarget]:
    """Download ``target_names`` in order; targets already cached and verified are not fetched."""
    results = []
    for name in target_names:
        try:
            info = updater.get_targetinfo(name)
            if info is None:
                raise TargetNotFoundError(f"target {name!r} is not in the trusted metadata")
            cached = updater.find_cached_target(info)
            if cached is not None:
                results.append(DownloadedTarget(name, Path(cached), from_cache=True))
                continue
            path = updater.download_target(info)
        except (OSError, exceptions.RepositoryError, exceptions.DownloadError) as e:
            raise TufClientError(f"target {name!r}: {type(e).__name__}: {e}") from e
        results.append(DownloadedTarget(name, Path(path), from_cache=False))
    return results


def download_resumable(
    info: TargetFile, *, target_base_url: str, target_dir: Path, fetcher: AgentFetcher, consistent_snapshot: bool
) -> Path:
    """Like ``Updater.download_target``, but a partial file survives restarts and is continued with a
    ``Range`` request. Nothing reads the file before its length and hashes match the trusted
    ``info``; a partial file that turns out wrong is deleted and the next attempt starts over.
    """
    name = quote(info.path, "")
    sha256 = info.hashes.get("sha256") or next(iter(info.hashes.values()))
    partial = target_dir / ".partial" / f"{sha256}.{name}"
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    if have > info.length:
        partial.unlink()
        have = 0
    dirname, sep, basename = info.path.rpartition("/")
    path = f"{dirname}{sep}{sha256}.{basename}" if consistent_snapshot else info.path
    url = f"{target_base_url.rstrip('/')}/{path}"
    try:
        if have < info.length:
            with partial.open("ab") as out:
                for chunk in fetcher.fetch_from(url, have):
                    have += len(chunk)
                    if have > info.length:
                        raise exceptions.DownloadLengthMismatchError(f"{url} is longer than {info.length} bytes")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        with partial.open("rb") as f:
            info.verify_length_and_hashes(f)
    except (exceptions.LengthOrHashMismatchError, exceptions.DownloadLengthMismatchError):
        partial.unlink(missing_ok=True)
        raise
    final = target_dir / name
    os.replace(partial, final)
    return final


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridfleet-agent tuf-client", description="TUF client with the client-test interface."
    )
    parser.add_argument("--metadata-dir", required=True, type=Path)
    parser.add_argument("--metadata-url")
    parser.add_argument("--target-name", action="append", default=[])
    parser.add_argument("--target-base-url")
    parser.add_argument("--target-dir", type=Path)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="store the trusted root (no network)")
    init.add_argument("trusted_root", type=Path)
    sub.add_parser("refresh", help="update top-level metadata")
    sub.add_parser("download", help="refresh, then download the named targets")
    return parser


def run(args: argparse.Namespace) -> None:
    if args.command == "init":
        args.metadata_dir.mkdir(parents=True, exist_ok=True)
        init_trust(args.metadata_dir, args.trusted_root.read_bytes())
        return
    if not args.metadata_url:
        raise TufClientError(f"{args.command} needs --metadata-url")
    if args.command == "refresh":
        refresh(open_updater(args.metadata_dir, args.metadata_url))
        return
    if not (args.target_name and args.target_base_url and args.target_dir):
        raise TufClientError("download needs --target-name, --target-base-url and --target-dir")
    args.target_dir.mkdir(parents=True, exist_ok=True)
    updater = open_updater(
        args.metadata_dir,
        args.metadata_url,
        target_dir=args.target_dir,
        target_base_url=args.target_base_url,
    )
    refresh(updater)
    for target in download_targets(updater, args.target_name):
        logger.info("%s: %s%s", target.name, target.path, " (cached)" if target.from_cache else "")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # the interface knows only 0 and 1; argparse uses 2 for usage errors
        return 0 if e.code in (0, None) else 1
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        run(args)
    except (TufClientError, OSError) as e:
        print(f"tuf-client: {e}", file=sys.stderr)
        return 1
    return 0
