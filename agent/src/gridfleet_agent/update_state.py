"""The one persisted update state: the job in progress (download to report) and what was last applied.

``update-state.json`` in the agent's state directory, written atomically (temp file, fsync,
rename, fsync of the directory) before every side effect::

    {"format": 1,
     "job": {"deployment": "42", "kind": "firmware", "target": "firmware/gw-os-2.1.0.tar",
             "version": "2.1.0", "step": "health_check", "attempt": 1, "transitions": 6, ...} | null,
     "applied": {"firmware": {"target": "...", "version": "2.1.0", "result": "success",
                              "sequence": 7, "deployment": "42", "attempt": 1}}}

``job`` and ``applied`` change in the same write, so a finished install is never recorded as
applied without its job being closed, or the other way round. ``format`` versions the file:
a file from an older agent (``install-state.json`` and ``applied.json``, format 0) is converted on
first read; a file this agent cannot read (written by a newer agent, or damaged) is set aside as
``update-state.json.unreadable`` and the agent starts from "nothing in progress".
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from gridfleet_agent.fsutil import atomic_write

logger = logging.getLogger(__name__)

FORMAT = 1


class Step(StrEnum):
    """Where the job is. Each is persisted before the side effect it names runs."""

    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    STAGING = "staging"
    STAGED = "staged"
    SWITCHING = "switching"
    REBOOTING = "rebooting"
    HEALTH_CHECK = "health_check"
    COMMITTING = "committing"
    ROLLING_BACK = "rolling_back"
    REPORTING = "reporting"
    """The outcome is decided (``result`` is set); its report is being queued."""
    ERROR = "error"
    """The machine could not finish a step (a rollback failed, an installer broke, a loop was
    detected); ``failed_step`` and ``code`` say which and why. Reported as ``failure``, then closed."""


class Result(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ROLLED_BACK = "rolled_back"
    DEFERRED = "deferred"
    REBOOTING = "rebooting"
    ERROR = "error"
    DOWNLOAD_FAILED = "download_failed"


#: Results after which the same target is tried again when the server assigns it anew.
FAILED_RESULTS = frozenset({Result.FAILURE, Result.ROLLED_BACK, Result.ERROR, Result.DOWNLOAD_FAILED})


@dataclass
class InstallJob:
    """One update in progress. ``data`` holds the installer's own notes (e.g. which slot)."""

    deployment: str
    kind: str
    target: str
    version: str
    step: Step
    started_at: str
    bundle_path: str = ""
    previous_version: str | None = None
    sequence: int | None = None
    """The assignment sequence the job started under (a retry comes with a new one)."""
    attempt: int = 1
    """How many times this gateway has started on this target for this deployment."""
    transitions: int = 0
    """Steps persisted so far; the loop guard stops a job that keeps coming back."""
    result: str = ""
    code: str = ""
    message: str = ""
    log: str = ""
    failed_step: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InstallJob:
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in raw.items() if k in known}, "step": Step(raw["step"])})


@dataclass(frozen=True)
class Applied:
    """The last target acted on for one bundle type, and how it ended."""

    target: str
    version: str | None
    result: str
    sequence: int | None = None
    deployment: str = ""
    attempt: int = 1

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Applied:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class UpdateState:
    job: InstallJob | None = None
    applied: dict[str, Applied] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "job": asdict(self.job) if self.job else None,
            "applied": {kind: asdict(entry) for kind, entry in self.applied.items()},
        }


class UpdateStateStore:
    """Reads and writes ``update-state.json``; converts the files of agents before format 1."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._legacy_job = path.parent / "install-state.json"
        self._legacy_applied = path.parent / "applied.json"

    def load(self) -> UpdateState:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return self._convert_legacy()
        except ValueError:
            return self._set_aside("it is not JSON")
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            return self._set_aside(f"its format is {found!r}, this agent reads {FORMAT}")
        try:
            job = InstallJob.from_json(raw["job"]) if raw.get("job") else None
            applied = {kind: Applied.from_json(entry) for kind, entry in (raw.get("applied") or {}).items()}
        except (KeyError, TypeError, ValueError) as e:
            return self._set_aside(f"it does not hold a valid state: {e}")
        return UpdateState(job, applied)

    def save(self, state: UpdateState) -> None:
        atomic_write(self.path, json.dumps(state.to_json(), indent=1).encode(), mode=0o600)

    def _set_aside(self, why: str) -> UpdateState:
        aside = self.path.with_name(self.path.name + ".unreadable")
        logger.error("cannot read %s (%s); kept as %s, starting with no update in progress", self.path, why, aside)
        os.replace(self.path, aside)
        return UpdateState()

    def _convert_legacy(self) -> UpdateState:
        """Format 0: the job in ``install-state.json`` and ``applied.json`` beside it."""
        state = UpdateState()
        try:
            raw_job = json.loads(self._legacy_job.read_bytes())
            if raw_job:
                state.job = InstallJob.from_json(raw_job)
        except FileNotFoundError:
            pass
        try:
            raw_applied = json.loads(self._legacy_applied.read_bytes())
            state.applied = {kind: Applied.from_json(entry) for kind, entry in raw_applied.items()}
        except FileNotFoundError:
            pass
        if state.job is not None or state.applied:
            logger.warning("converting %s and %s to %s", self._legacy_job, self._legacy_applied, self.path)
            self.save(state)
        self._legacy_job.unlink(missing_ok=True)
        self._legacy_applied.unlink(missing_ok=True)
        return state
