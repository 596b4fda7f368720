"""The install state machine: stage, switch, health check, commit, or roll back.

Modelled on Mender's client. Every transition is written to a state file (fsync'd, atomic
rename) *before* its side effect runs, so after a power cut or SIGKILL at any point ``recover()``
knows the last intent and ends in a consistent version:

=============  ================================  =========================
persisted      what may have happened             recovery
=============  ================================  =========================
staging        new version half-unpacked          discard it, old version
staged         new version ready, not active      discard it, old version
switching      the atomic switch ran or not       roll back, old version
rebooting      reboot into the new version asked  health check, then commit
health_check   new version active, unverified     roll back, old version
committing     commit decided                     finish commit, new version
rolling_back   rollback decided                   finish rollback, old version
=============  ================================  =========================

A reboot is the one interruption that is expected: it is persisted as ``rebooting`` and the next
start runs the health check once (persisting ``health_check`` first, so a second interruption
rolls back, like a bootloader's boot counter).

Each step is reported through ``report`` (the daemon queues the reports in the durable outbox):
``installing``, then ``success``, ``failure`` (nothing was switched) or ``rolled_back`` (switched
back; with the failing step's code, message and log excerpt); ``rebooting`` and, after the
reboot, ``committing`` for bundles that need one; ``deferred`` when a hook postpones the install.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from gridfleet_agent.errors import AgentError
from gridfleet_agent.fsutil import atomic_write
from gridfleet_agent.installers.bundle import BundleError, read_manifest

logger = logging.getLogger(__name__)


class Step(StrEnum):
    STAGING = "staging"
    STAGED = "staged"
    SWITCHING = "switching"
    REBOOTING = "rebooting"
    HEALTH_CHECK = "health_check"
    COMMITTING = "committing"
    ROLLING_BACK = "rolling_back"


class Result(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    ROLLED_BACK = "rolled_back"
    DEFERRED = "deferred"
    REBOOTING = "rebooting"


class InstallError(AgentError):
    """An install step failed. ``code`` is machine-readable, ``log_excerpt`` the tail of its output."""

    def __init__(self, code: str, message: str, *, log_excerpt: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.log_excerpt = log_excerpt


@dataclass
class InstallJob:
    """One install in progress; ``data`` holds the installer's own notes (e.g. which slot)."""

    deployment: str
    kind: str
    bundle_path: str
    target: str
    version: str
    previous_version: str | None
    step: Step
    started_at: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    result: Result
    version: str | None
    """The version active for this bundle type afterwards."""
    code: str = ""
    message: str = ""
    kind: str = ""
    target: str = ""


class Installer(Protocol):
    """What the state machine needs from a bundle type. Every method must be idempotent."""

    def active_version(self) -> str | None: ...

    def stage(self, job: InstallJob) -> None:
        """Prepare the new version where it is not active yet (validate, unpack, run install script)."""

    def needs_reboot(self, job: InstallJob) -> bool: ...

    def switch(self, job: InstallJob) -> None:
        """Make the staged version active in one atomic step."""

    def health_check(self, job: InstallJob) -> None:
        """Raise ``InstallError`` if the new version is not healthy."""

    def commit(self, job: InstallJob) -> None: ...

    def rollback(self, job: InstallJob) -> None:
        """Make the previous version active again (also valid if ``switch`` never ran)."""

    def discard(self, job: InstallJob) -> None:
        """Remove what ``stage`` left behind."""


class StatusReporter(Protocol):
    def __call__(self, job: InstallJob, step: str, *, code: str = "", message: str = "", log: str = "") -> None: ...


DeferHook = Callable[[InstallJob], str | None]
"""Returns a reason to postpone the install (e.g. "export curtailment active"), or None."""


def command_defer_hook(command: list[str], *, timeout: float = 30.0) -> DeferHook:
    """A hook that defers while ``command`` exits non-zero; its output is the reason."""

    def hook(job: InstallJob) -> str | None:
        env = {"GRIDFLEET_BUNDLE_KIND": job.kind, "GRIDFLEET_BUNDLE_VERSION": job.version}
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"defer hook {command[0]} failed: {e}"
        if done.returncode != 0:
            return (done.stdout + done.stderr).strip()[-500:] or f"{command[0]} exited {done.returncode}"
        return None

    return hook


class InstallRunner:
    """Runs one install at a time through the persisted state machine."""

    def __init__(
        self,
        state_file: Path,
        installers: Mapping[str, Installer],
        *,
        report: StatusReporter,
        defer_hooks: tuple[DeferHook, ...] = (),
        reboot: Callable[[], None] | None = None,
    ) -> None:
        self.state_file = state_file
        self.installers = installers
        self._report = report
        self._defer_hooks = defer_hooks
        self._reboot = reboot

    # -- persisted state -------------------------------------------------------------------
    def current(self) -> InstallJob | None:
        try:
            raw = json.loads(self.state_file.read_bytes())
        except FileNotFoundError:
            return None
        if raw is None:
            return None
        return InstallJob(**{**raw, "step": Step(raw["step"])})

    def _persist(self, job: InstallJob | None) -> None:
        atomic_write(self.state_file, json.dumps(asdict(job) if job else None).encode(), mode=0o600)

    def _enter(self, job: InstallJob, step: Step) -> InstallJob:
        job = replace(job, step=step)
        self._persist(job)
        return job

    # -- entry points ------------------------------------------------------------------------
    def install(self, *, deployment: str, kind: str, bundle: Path, target: str) -> Outcome:
        """Install a TUF-verified bundle. Returns when it is committed, rolled back or deferred."""
        if (pending := self.current()) is not None:
            raise RuntimeError(f"install of {pending.target} is still {pending.step}; run recover() first")
        installer = self.installers.get(kind)
        try:
            if installer is None:
                raise BundleError(f"this agent has no installer for {kind!r} bundles")
            manifest = read_manifest(bundle)
            if manifest.type != kind:
                raise BundleError(f"bundle declares type {manifest.type!r}, deployment says {kind!r}")
        except BundleError as e:
            job = self._new_job(deployment, kind, bundle, target, version="", previous=None)
            self._report(job, "failure", code="invalid_bundle", message=str(e))
            active = installer.active_version() if installer else None
            return Outcome(Result.FAILURE, active, "invalid_bundle", str(e), kind, target)
        job = self._new_job(
            deployment, kind, bundle, target, version=manifest.version, previous=installer.active_version()
        )
        for hook in self._defer_hooks:
            if reason := hook(job):
                self._report(job, "deferred", code="deferred_by_hook", message=reason)
                return Outcome(Result.DEFERRED, job.previous_version, "deferred_by_hook", reason, kind, target)
        job = self._enter(job, Step.STAGING)
        self._report(job, "installing")
        return self._run(installer, job)

    def recover(self) -> Outcome | None:
        """Finish or undo an install interrupted by a crash, power cut or reboot."""
        job = self.current()
        if job is None:
            return None
        installer = self.installers[job.kind]
        logger.warning("resuming interrupted install of %s at step %s", job.target, job.step)
        match job.step:
            case Step.STAGING | Step.STAGED:
                installer.discard(job)
                return self._finish(job, Result.FAILURE, "interrupted", f"agent restarted while {job.step}")
            case Step.REBOOTING:
                return self._verify_and_commit(installer, self._enter(job, Step.HEALTH_CHECK))
            case Step.COMMITTING:
                return self._commit(installer, job)
            case Step.SWITCHING | Step.HEALTH_CHECK | Step.ROLLING_BACK:
                return self._roll_back(installer, job, "interrupted", f"agent restarted while {job.step}")

    # -- the machine ---------------------------------------------------------------------------
    def _new_job(
        self, deployment: str, kind: str, bundle: Path, target: str, *, version: str, previous: str | None
    ) -> InstallJob:
        started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return InstallJob(deployment, kind, str(bundle), target, version, previous, Step.STAGING, started)

    def _run(self, installer: Installer, job: InstallJob) -> Outcome:
        try:
            installer.stage(job)
            job = self._enter(job, Step.STAGED)
        except InstallError as e:
            installer.discard(job)
            return self._finish(job, Result.FAILURE, e.code, e.message, e.log_excerpt)
        job = self._enter(job, Step.SWITCHING)
        try:
            installer.switch(job)
        except InstallError as e:
            return self._roll_back(installer, job, e.code, e.message, e.log_excerpt)
        if installer.needs_reboot(job):
            job.data["rebooted"] = True
            self._enter(job, Step.REBOOTING)
            self._report(job, "rebooting")
            if self._reboot is not None:
                self._reboot()
            return Outcome(Result.REBOOTING, job.version, kind=job.kind, target=job.target)
        return self._verify_and_commit(installer, self._enter(job, Step.HEALTH_CHECK))

    def _verify_and_commit(self, installer: Installer, job: InstallJob) -> Outcome:
        try:
            installer.health_check(job)
        except InstallError as e:
            return self._roll_back(installer, job, e.code, e.message, e.log_excerpt)
        return self._commit(installer, self._enter(job, Step.COMMITTING))

    def _commit(self, installer: Installer, job: InstallJob) -> Outcome:
        if job.data.get("rebooted"):  # "committing" tells the server the new version came up after the reboot
            self._report(job, "committing")
        installer.commit(job)
        return self._finish(job, Result.SUCCESS)

    def _roll_back(self, installer: Installer, job: InstallJob, code: str, message: str, log: str = "") -> Outcome:
        job = self._enter(job, Step.ROLLING_BACK)
        installer.rollback(job)
        installer.discard(job)
        return self._finish(job, Result.ROLLED_BACK, code, message, log)

    def _finish(self, job: InstallJob, result: Result, code: str = "", message: str = "", log: str = "") -> Outcome:
        # Report before clearing the state: a crash in between repeats the report (at least once)
        # instead of losing it.
        self._report(job, str(result), code=code, message=message, log=log)
        self._persist(None)
        version = job.version if result is Result.SUCCESS else job.previous_version
        return Outcome(result, version, code, message, job.kind, job.target)
