"""The update state machine: download, stage, switch, health check, commit or roll back, report.

Modelled on Mender's client. Every transition is persisted in the one update state
(``gridfleet_agent.update_state``, fsync'd, atomic rename) *before* its side effect runs, so after
a power cut or SIGKILL at any point ``recover()`` knows the last intent and ends in a whole version:

=============  ================================  ======================================
persisted      what may have happened             recovery
=============  ================================  ======================================
downloading    a partial download on disk         forget the job; the next check resumes
downloaded     the bundle is verified on disk     forget the job; the next check installs
staging        new version half-unpacked          discard it, old version
staged         new version ready, not active      discard it, old version
switching      the atomic switch ran or not       roll back, old version
rebooting      reboot into the new version asked  health check, then commit
health_check   new version active, unverified     roll back, old version
committing     commit decided                     finish commit, new version
rolling_back   rollback decided                   finish rollback, old version
reporting      outcome decided, report queued?    queue the report (again), close the job
error          a step could not be completed      queue the ``failure`` report, close the job
=============  ================================  ======================================

A reboot is the one interruption that is expected: it is persisted as ``rebooting`` and the next
start runs the health check once (persisting ``health_check`` first, so a second interruption
rolls back, like a bootloader's boot counter).

``error`` is where the machine goes when it cannot do what a step needs: a rollback that fails,
an installer that raises something other than ``InstallError``, or the loop guard (a job that
went through more than ``max_transitions`` persisted steps, e.g. because every attempt at a
step kills the process). It is reported as ``failure`` with ``code`` ``rollback_failed``,
``installer_error`` or ``update_loop`` and closed, so the next install starts normally instead
of waiting for a restart.

Each step is reported through ``report`` (the daemon queues the reports in the durable outbox):
``downloading``/``downloaded`` (by the updater), ``installing``, then ``success``, ``failure``
(nothing was switched) or ``rolled_back`` (switched back; with the failing step's code, message
and log excerpt); ``rebooting`` and, after the reboot, ``committing`` for bundles that need one;
``deferred`` when a hook postpones the install.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gridfleet_agent.errors import AgentError
from gridfleet_agent.installers.bundle import BundleError, read_manifest
from gridfleet_agent.queue import utc_timestamp
from gridfleet_agent.update_state import (
    FAILED_RESULTS,
    Applied,
    InstallJob,
    Result,
    Step,
    UpdateState,
    UpdateStateStore,
)

__all__ = [
    "DeferHook",
    "InstallError",
    "InstallJob",
    "InstallRunner",
    "Installer",
    "Outcome",
    "Result",
    "StatusReporter",
    "Step",
    "UpdateBusyError",
    "command_defer_hook",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_TRANSITIONS = 24
"""A whole install with a reboot and a rollback persists about 12 steps; twice that is a loop."""

_FINAL_STEP = {
    Result.SUCCESS: "success",
    Result.FAILURE: "failure",
    Result.ROLLED_BACK: "rolled_back",
    Result.DEFERRED: "deferred",
    Result.ERROR: "failure",
    Result.DOWNLOAD_FAILED: "failure",
}


class UpdateBusyError(AgentError):
    """Another update is waiting for its reboot; a new one starts after it is verified."""

    code = "update_busy"


class InstallError(AgentError):
    """An install step failed. ``code`` is machine-readable, ``log_excerpt`` the tail of its output."""

    def __init__(self, code: str, message: str, *, log_excerpt: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.log_excerpt = log_excerpt


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
    """Runs one update at a time through the persisted state machine."""

    def __init__(
        self,
        state_file: Path,
        installers: Mapping[str, Installer],
        *,
        report: StatusReporter,
        defer_hooks: tuple[DeferHook, ...] = (),
        reboot: Callable[[], None] | None = None,
        max_transitions: int = MAX_TRANSITIONS,
    ) -> None:
        self.store = UpdateStateStore(state_file)
        self.installers = installers
        self._send_report = report
        self._defer_hooks = defer_hooks
        self._reboot = reboot
        self.max_transitions = max_transitions

    def _report(self, job: InstallJob, step: str, *, code: str = "", message: str = "", log: str = "") -> None:
        """Report a step to the server, and log it: an uploaded log then explains a failed install."""
        level = logging.WARNING if code else logging.INFO
        logger.log(
            level,
            "update %s (%s %s, deployment %s, attempt %s): %s%s",
            job.target,
            job.kind,
            job.version or "?",
            job.deployment or "-",
            job.attempt,
            step,
            f": {code}: {message}" if code else "",
        )
        if log:
            logger.log(level, "update %s output:\n%s", job.target, log.rstrip())
        self._send_report(job, step, code=code, message=message, log=log)

    # -- persisted state -------------------------------------------------------------------
    def state(self) -> UpdateState:
        return self.store.load()

    def current(self) -> InstallJob | None:
        return self.store.load().job

    def applied(self) -> dict[str, Applied]:
        return self.store.load().applied

    def _enter(self, job: InstallJob, step: Step, **changes: Any) -> InstallJob:
        """Persist ``step`` (the loop guard counts it) before the caller runs its side effect."""
        # Reporting and error only queue a report: they get a little more room than the steps that act.
        limit = self.max_transitions + (4 if step in (Step.REPORTING, Step.ERROR) else 0)
        if job.transitions + 1 > limit:
            raise _LoopDetectedError(job, step)
        job = replace(job, step=step, transitions=job.transitions + 1, **changes)
        state = self.store.load()
        state.job = job
        self.store.save(state)
        return job

    # -- entry points ------------------------------------------------------------------------
    def begin(
        self, *, deployment: str, kind: str, target: str, version: str = "", sequence: int | None = None
    ) -> InstallJob:
        """Start a job for an assigned target, persisted as ``downloading``.

        An unfinished job is recovered first (nothing waits for a restart), except one waiting
        for its reboot: that raises ``UpdateBusyError``.
        """
        state = self.store.load()
        if state.job is not None:
            if state.job.step is Step.REBOOTING:
                raise UpdateBusyError(f"{state.job.target} waits for its reboot; {target} follows after it")
            logger.warning("closing the unfinished update of %s (%s) first", state.job.target, state.job.step)
            self.recover()
            state = self.store.load()
        previous = state.applied.get(kind)
        attempt = 1
        if previous is not None and (previous.target, previous.deployment) == (target, deployment):
            attempt = previous.attempt + (1 if previous.result in FAILED_RESULTS else 0)
        job = InstallJob(
            deployment=deployment,
            kind=kind,
            target=target,
            version=version,
            step=Step.DOWNLOADING,
            started_at=utc_timestamp(),
            sequence=sequence,
            attempt=attempt,
        )
        return self._enter(job, Step.DOWNLOADING)

    def report(self, job: InstallJob, step: str) -> None:
        """A progress report the updater makes (``downloading``, ``downloaded``)."""
        self._report(job, step)

    def downloaded(self, job: InstallJob, bundle: Path) -> InstallJob:
        return self._enter(job, Step.DOWNLOADED, bundle_path=str(bundle))

    def download_failed(self, job: InstallJob, message: str) -> Outcome:
        """Reported as ``failure``; the next check downloads again."""
        return self._drive(None, lambda: self._finish(None, job, Result.DOWNLOAD_FAILED, "download_failed", message))

    def defer(self, job: InstallJob, code: str, reason: str, *, report: bool = True) -> Outcome:
        """Close the job as deferred; the target is looked at again at the next check."""
        if not report:
            return self._close(self.installers.get(job.kind), job, Result.DEFERRED)
        return self._drive(None, lambda: self._finish(None, job, Result.DEFERRED, code, reason))

    def install(self, *, deployment: str, kind: str, bundle: Path, target: str, sequence: int | None = None) -> Outcome:
        """Install a TUF-verified bundle already on disk. Returns when committed, rolled back or deferred."""
        job = self.begin(deployment=deployment, kind=kind, target=target, sequence=sequence)
        return self.install_downloaded(self.downloaded(job, bundle))

    def install_downloaded(self, job: InstallJob) -> Outcome:
        """Run the job from ``downloaded`` to its report."""
        installer = self.installers.get(job.kind)
        try:
            if installer is None:
                raise BundleError(f"this agent has no installer for {job.kind!r} bundles")
            manifest = read_manifest(Path(job.bundle_path))
            if manifest.type != job.kind:
                raise BundleError(f"bundle declares type {manifest.type!r}, deployment says {job.kind!r}")
        except BundleError as e:
            invalid = str(e)
            return self._drive(
                installer, lambda: self._finish(installer, job, Result.FAILURE, "invalid_bundle", invalid)
            )
        job = replace(job, version=manifest.version, previous_version=installer.active_version())
        for hook in self._defer_hooks:
            if postponed := hook(job):
                return self.defer(job, "deferred_by_hook", postponed)
        ready = job
        return self._drive(installer, lambda: self._run(installer, ready))

    def recover(self) -> Outcome | None:
        """Finish or undo an update interrupted by a crash, power cut or reboot."""
        job = self.current()
        if job is None:
            return None
        installer = self.installers.get(job.kind)
        logger.warning("resuming interrupted update of %s at step %s", job.target, job.step)
        return self._drive(installer, lambda: self._resume(installer, job))

    # -- the machine ---------------------------------------------------------------------------
    def _drive(self, installer: Installer | None, work: Callable[[], _T]) -> _T | Outcome:
        """Run ``work``; a job caught by the loop guard goes to ``error`` (or, looping there, is closed)."""
        try:
            return work()
        except _LoopDetectedError as loop:
            stuck = loop.job
            message = f"the update went through {stuck.transitions} steps without finishing (in {stuck.step})"
            if Step.REPORTING in (stuck.step, loop.step) or Step.ERROR in (stuck.step, loop.step):
                logger.error("%s: closing it without a report", message)
                return self._close(installer, stuck, Result(stuck.result or Result.ERROR))
            return self._error(installer, stuck, "update_loop", message)

    def _resume(self, installer: Installer | None, job: InstallJob) -> Outcome | None:
        match job.step:
            case Step.DOWNLOADING | Step.DOWNLOADED:
                self._forget(job)  # nothing installed yet: the next check starts over (a partial download resumes)
                return None
            case Step.REPORTING | Step.ERROR:
                return self._report_and_close(installer, self._enter(job, job.step))
        if installer is None:
            return self._error(None, job, "installer_error", f"this agent has no installer for {job.kind!r} any more")
        interrupted = f"agent restarted while {job.step}"
        match job.step:
            case Step.STAGING | Step.STAGED:
                # Re-entered so that the loop guard counts a discard that kills the agent every time.
                job = self._enter(job, job.step)
                self._discard(installer, job)
                return self._finish(installer, job, Result.FAILURE, "interrupted", interrupted)
            case Step.REBOOTING:
                return self._verify_and_commit(installer, self._enter(job, Step.HEALTH_CHECK))
            case Step.COMMITTING:
                return self._commit(installer, self._enter(job, Step.COMMITTING))
            case _:  # switching, health_check, rolling_back
                return self._roll_back(installer, job, job.code or "interrupted", job.message or interrupted, job.log)

    def _run(self, installer: Installer, job: InstallJob) -> Outcome:
        job = self._enter(job, Step.STAGING)
        self._report(job, "installing")
        try:
            installer.stage(job)
            job = self._enter(job, Step.STAGED)
        except _LoopDetectedError:
            raise
        except Exception as e:  # an installer plugin's bug is reported as a failure, not fatal
            self._discard(installer, job)
            code, message, log = _failure(e)
            return self._finish(installer, job, Result.FAILURE, code, message, log=log)
        job = self._enter(job, Step.SWITCHING)
        try:
            installer.switch(job)
            reboot = installer.needs_reboot(job)
        except Exception as e:
            return self._roll_back(installer, job, *_failure(e))
        if reboot:
            job.data["rebooted"] = True
            job = self._enter(job, Step.REBOOTING)
            self._report(job, "rebooting")
            if self._reboot is not None:
                self._reboot()
            return Outcome(Result.REBOOTING, job.version, kind=job.kind, target=job.target)
        return self._verify_and_commit(installer, self._enter(job, Step.HEALTH_CHECK))

    def _verify_and_commit(self, installer: Installer, job: InstallJob) -> Outcome:
        try:
            installer.health_check(job)
        except Exception as e:
            return self._roll_back(installer, job, *_failure(e))
        return self._commit(installer, self._enter(job, Step.COMMITTING))

    def _commit(self, installer: Installer, job: InstallJob) -> Outcome:
        if job.data.get("rebooted"):  # "committing" tells the server the new version came up after the reboot
            self._report(job, "committing")
        try:
            installer.commit(job)
        except Exception as e:
            return self._error(installer, job, "commit_failed", _describe(e))
        return self._finish(installer, job, Result.SUCCESS)

    def _roll_back(self, installer: Installer, job: InstallJob, code: str, message: str, log: str = "") -> Outcome:
        # The reason is persisted with the step, so a rollback finished after a restart reports it.
        job = self._enter(job, Step.ROLLING_BACK, code=code, message=message, log=log)
        try:
            installer.rollback(job)
        except Exception as e:
            return self._error(
                installer, job, "rollback_failed", f"rolling back after {code} failed: {_describe(e)}", log
            )
        self._discard(installer, job)
        return self._finish(installer, job, Result.ROLLED_BACK, code, message, log=log)

    def _discard(self, installer: Installer, job: InstallJob) -> None:
        try:
            installer.discard(job)
        except Exception:  # leftovers in the inactive slot are overwritten by the next install
            logger.exception("removing what the update of %s left behind failed", job.target)

    def _error(self, installer: Installer | None, job: InstallJob, code: str, message: str, log: str = "") -> Outcome:
        logger.error("update of %s stopped in %s: %s: %s", job.target, job.step, code, message)
        job = self._enter(
            job, Step.ERROR, failed_step=str(job.step), result=str(Result.ERROR), code=code, message=message, log=log
        )
        return self._report_and_close(installer, job)

    def _finish(
        self,
        installer: Installer | None,
        job: InstallJob,
        result: Result,
        code: str = "",
        message: str = "",
        *,
        log: str = "",
    ) -> Outcome:
        job = self._enter(job, Step.REPORTING, result=str(result), code=code, message=message, log=log)
        return self._report_and_close(installer, job)

    def _report_and_close(self, installer: Installer | None, job: InstallJob) -> Outcome:
        # Report before closing the job: a crash in between repeats the report (at least once)
        # instead of losing it.
        result = Result(job.result)
        self._report(job, _FINAL_STEP[result], code=job.code, message=job.message, log=job.log)
        return self._close(installer, job, result)

    def _close(self, installer: Installer | None, job: InstallJob, result: Result) -> Outcome:
        """Clear the job and record what was applied, in one write."""
        state = self.store.load()
        state.job = None
        state.applied[job.kind] = Applied(
            target=job.target,
            version=job.version,
            result=str(result),
            sequence=job.sequence,
            deployment=job.deployment,
            attempt=job.attempt,
        )
        self.store.save(state)
        active = job.version if result is Result.SUCCESS else _active_version(installer, job.previous_version)
        return Outcome(result, active, job.code, job.message, job.kind, job.target)

    def _forget(self, job: InstallJob) -> None:
        state = self.store.load()
        state.job = None
        self.store.save(state)


class _LoopDetectedError(AgentError):
    """Raised by the loop guard instead of persisting one step too many; ``job`` is the last persisted."""

    code = "update_loop"

    def __init__(self, job: InstallJob, step: Step) -> None:
        super().__init__(f"update of {job.target} looped ({job.transitions} steps, then {step})")
        self.job = job
        self.step = step


def _describe(error: Exception) -> str:
    return error.message if isinstance(error, InstallError) else f"{type(error).__name__}: {error}"


def _failure(error: Exception) -> tuple[str, str, str]:
    """(code, message, log excerpt) of an installer's error; anything but ``InstallError`` is a bug in it."""
    if isinstance(error, InstallError):
        return error.code, error.message, error.log_excerpt
    logger.error("installer raised %s", type(error).__name__, exc_info=error)
    return "installer_error", _describe(error), ""


def _active_version(installer: Installer | None, fallback: str | None) -> str | None:
    if installer is None:
        return fallback
    try:
        return installer.active_version()
    except Exception:  # a broken installer must not hide the outcome
        logger.exception("asking the installer for its active version failed")
        return fallback
