"""The update check: TUF refresh, the gateway's assignment, download, install (docs/protocol/updates.md).

One check, run by the daemon every poll interval (with jitter) and on ``check_updates``:

1. make sure a trusted root exists (shipped with the image, else ``1.root.json`` fetched once);
2. fetch the gateway's update channel (its opaque assignment path, TUF URLs, license key);
3. TUF-refresh and read ``devices/<token>/assignment.json``;
4. for each bundle type whose assigned target differs from what was last applied: download it
   through TUF (length and hashes verified), wait for its install conditions, and hand it to
   the install state machine, reporting every step.

A target that failed or was rolled back is not retried until the server assigns another one;
a deferred install is re-evaluated at every check.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import urllib3
from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.ngclient import Updater

from gridfleet_agent import __version__
from gridfleet_agent.errors import AgentError
from gridfleet_agent.fetcher import AgentFetcher
from gridfleet_agent.fsutil import atomic_write
from gridfleet_agent.installers.bundle import BUNDLE_TYPES
from gridfleet_agent.installers.runner import InstallRunner
from gridfleet_agent.queue import Outbox, RecordKind
from gridfleet_agent.schedule import install_blocked_by
from gridfleet_agent.tuf_client import TufClientError, download_resumable, init_trust, open_updater, refresh
from gridfleet_agent.update_state import FAILED_RESULTS, Result

logger = logging.getLogger(__name__)

ASSIGNMENT_FORMAT = "gridfleet-assignment/1"


class UpdateError(AgentError):
    """An update check could not complete; the next check retries after a backoff."""


@dataclass
class CheckReport:
    """What one check did, for ``gridfleet-agent status`` and the logs."""

    at: str
    assignment_sequence: int | None = None
    actions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdatePaths:
    state_dir: Path

    @property
    def metadata_dir(self) -> Path:
        return self.state_dir / "tuf" / "metadata"

    @property
    def target_dir(self) -> Path:
        return self.state_dir / "tuf" / "targets"

    @property
    def channel_file(self) -> Path:
        return self.state_dir / "update-channel.json"


class UpdateService:
    def __init__(
        self,
        *,
        server_url: str,
        state_dir: Path,
        token: Callable[[], str],
        runner: InstallRunner,
        outbox: Outbox,
        trusted_root: Path | None = None,
        ssl_context: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.paths = UpdatePaths(state_dir)
        self._token = token
        self.runner = runner
        self.outbox = outbox
        self._trusted_root = trusted_root
        self._ssl_context = ssl_context
        self._clock = clock
        self._pool = urllib3.PoolManager(ssl_context=ssl_context, retries=urllib3.Retry(1, redirect=0))
        self._lock = threading.Lock()  # one TUF client at a time in this process

    # -- persisted facts ---------------------------------------------------------------------
    def channel(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.paths.channel_file.read_bytes())
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    # -- HTTP ------------------------------------------------------------------------------------
    def _get(self, url: str, *, auth: bool) -> bytes:
        headers = {"User-Agent": f"gridfleet-agent/{__version__}", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        try:
            response = self._pool.request("GET", url, headers=headers, timeout=30.0)
        except urllib3.exceptions.HTTPError as e:
            raise UpdateError(f"GET {url}: {e}") from e
        if response.status != HTTPStatus.OK:
            raise UpdateError(f"GET {url}: HTTP {response.status} {response.data[:200]!r}")
        return bytes(response.data)

    def fetch_channel(self) -> dict[str, Any]:
        """The gateway's update channel; the cached copy if the server cannot be asked right now."""
        try:
            data = json.loads(self._get(f"{self.server_url}/gw/v1/updates/channel", auth=True))
            if not isinstance(data, dict) or not {"assignment_target", "metadata_url", "targets_url"} <= set(data):
                raise UpdateError(f"update channel answer lacks fields: {str(data)[:200]}")
        except (UpdateError, ValueError) as e:
            cached = self.channel()
            if cached is None:
                raise UpdateError(f"cannot fetch the update channel: {e}") from e
            logger.warning("using the cached update channel: %s", e)
            return cached
        if data != self.channel():
            atomic_write(self.paths.channel_file, json.dumps(data, indent=1).encode())
        return data

    def ensure_trusted_root(self, channel: dict[str, Any]) -> None:
        if (self.paths.metadata_dir / "root.json").exists():
            return
        self.paths.metadata_dir.mkdir(parents=True, exist_ok=True)
        if self._trusted_root is not None and self._trusted_root.exists():
            root = self._trusted_root.read_bytes()
        else:
            # Trust on first use, over the connection that authenticated the server (updates.md 1).
            root = self._get(f"{channel['metadata_url'].rstrip('/')}/1.root.json", auth=False)
        try:
            init_trust(self.paths.metadata_dir, root)
        except TufClientError as e:
            raise UpdateError(str(e)) from e

    # -- the check ------------------------------------------------------------------------------
    def check(self) -> CheckReport:
        with self._lock:
            try:
                report = self._check()
            except UpdateError as e:
                logger.warning("update check failed: %s", e)
                raise
        # One line per check in the agent's log: what the assignment asked and what was done.
        logger.info(
            "update check: assignment sequence %s; %s",
            report.assignment_sequence,
            ", ".join(f"{kind} {action}" for kind, action in report.actions.items()) or "nothing assigned",
        )
        return report

    def _check(self) -> CheckReport:
        report = CheckReport(at=self._clock().isoformat(timespec="seconds").replace("+00:00", "Z"))
        channel = self.fetch_channel()
        self.ensure_trusted_root(channel)
        self.paths.target_dir.mkdir(parents=True, exist_ok=True)
        fetcher = AgentFetcher(token=self._token, ssl_context=self._ssl_context)
        try:
            updater = open_updater(
                self.paths.metadata_dir,
                channel["metadata_url"],
                target_dir=self.paths.target_dir,
                target_base_url=channel["targets_url"],
                fetcher=fetcher,
            )
            refresh(updater)
            assignment = self._assignment(updater, channel["assignment_target"])
        except TufClientError as e:
            self.outbox.put(RecordKind.EVENT, {"name": "tuf.refresh_failed", "message": str(e)[:2000]})
            raise UpdateError(str(e)) from e
        if assignment is None:
            report.actions["assignment"] = "none"
            return report
        root = Metadata[Root].from_file(str(self.paths.metadata_dir / "root.json"))
        download = functools.partial(
            download_resumable,
            target_base_url=channel["targets_url"],
            target_dir=self.paths.target_dir,
            fetcher=fetcher,
            consistent_snapshot=bool(root.signed.consistent_snapshot),
        )
        report.assignment_sequence = assignment.get("sequence")
        for kind in BUNDLE_TYPES:
            entry = assignment.get(kind)
            if isinstance(entry, dict) and isinstance(entry.get("target"), str):
                entry = {**entry, "sequence": assignment.get("sequence")}
                report.actions[kind] = self._apply(updater, kind, entry, download)
        return report

    def _assignment(self, updater: Updater, target: str) -> dict[str, Any] | None:
        info = updater.get_targetinfo(target)
        if info is None:
            return None
        path = updater.find_cached_target(info) or updater.download_target(info)
        assignment = json.loads(Path(path).read_bytes())
        if not isinstance(assignment, dict) or assignment.get("format") != ASSIGNMENT_FORMAT:
            raise TufClientError(f"{target} is not a {ASSIGNMENT_FORMAT} document")
        return assignment

    def _apply(self, updater: Updater, kind: str, entry: dict[str, Any], download: Callable[[TargetFile], Path]) -> str:
        previous = self.runner.applied().get(kind)
        sequence = entry.get("sequence")
        if previous is not None and previous.target == entry["target"]:
            # The server retries a failed install by re-assigning the same target under a new sequence.
            retried = previous.result in FAILED_RESULTS and previous.sequence not in (None, sequence)
            again = previous.result in (Result.DEFERRED, Result.DOWNLOAD_FAILED)
            if not (retried or again):
                return f"{previous.result} {entry.get('version')} (unchanged)"
        job = self.runner.begin(
            deployment=str(entry.get("deployment") or ""),
            kind=kind,
            target=entry["target"],
            version=str(entry.get("version", "")),
            sequence=sequence if isinstance(sequence, int) else None,
        )
        try:
            info = updater.get_targetinfo(entry["target"])
            if info is None:
                raise TufClientError(f"assigned target {entry['target']} is not in the signed metadata")
            bundle = updater.find_cached_target(info)
            if bundle is None:
                self.runner.report(job, "downloading")
                bundle = str(download(info))  # large: a partial download survives a restart
                self.runner.report(job, "downloaded")
        except (TufClientError, tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, OSError) as e:
            self.runner.download_failed(job, str(e))
            raise UpdateError(f"{kind} {entry['target']}: {e}") from e
        job = self.runner.downloaded(job, Path(bundle))
        if reason := install_blocked_by(entry.get("install"), self._clock()):
            # Report a deferral once, not at every poll.
            first = previous is None or previous.target != entry["target"] or previous.result != Result.DEFERRED
            self.runner.defer(job, "install_window", reason, report=first)
            return f"deferred: {reason}"
        outcome = self.runner.install_downloaded(job)
        if outcome.result is not Result.REBOOTING:
            Path(bundle).unlink(missing_ok=True)
        return f"{outcome.result} {outcome.version}"
