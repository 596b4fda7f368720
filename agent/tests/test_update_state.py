"""The one persisted update state: error state, loop guard, attempts, format versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gridfleet_agent.installers.firmware import FirmwareInstaller
from gridfleet_agent.installers.runner import InstallJob, InstallRunner, Result
from gridfleet_agent.queue import Outbox
from gridfleet_agent.update_state import FORMAT, Step, UpdateStateStore

from .bundles import firmware_bundle
from .reports import Reports

HEALTHY, UNHEALTHY = "exit 0\n", "echo 'inverter bridge down'\nexit 1\n"


def firmware_runner(tmp_path: Path, reports: Reports) -> InstallRunner:
    firmware = FirmwareInstaller(tmp_path / "firmware", factory_version="1.0.0")
    return InstallRunner(tmp_path / "update-state.json", {"firmware": firmware}, report=reports)


class RollbackFailsOnce(FirmwareInstaller):
    """A/B firmware whose first rollback fails, as when the disk is briefly read-only."""

    rollbacks = 0

    def rollback(self, job: InstallJob) -> None:
        self.rollbacks += 1
        if self.rollbacks == 1:
            raise OSError(30, "Read-only file system")
        super().rollback(job)


def test_a_failing_rollback_ends_in_error_and_the_next_install_runs_without_a_restart(tmp_path: Path):
    reports = Reports()
    firmware = RollbackFailsOnce(tmp_path / "firmware", factory_version="1.0.0")
    runner = InstallRunner(tmp_path / "update-state.json", {"firmware": firmware}, report=reports)

    failed = runner.install(
        deployment="7", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0", health_check=UNHEALTHY), target="a"
    )

    assert (failed.result, failed.code) == (Result.ERROR, "rollback_failed")
    assert "Read-only file system" in failed.message and "health_check_failed" in failed.message
    assert failed.version == "2.0.0"  # the truth: the switch could not be undone
    assert reports[-1][:2] == ("failure", "rollback_failed")
    assert "inverter bridge down" in reports.logs[-1]
    assert runner.current() is None
    assert runner.applied()["firmware"].result == "error"

    fixed = runner.install(
        deployment="8", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.1", health_check=HEALTHY), target="b"
    )

    assert (fixed.result, firmware.active_version()) == (Result.SUCCESS, "2.0.1")
    assert reports.steps[-2:] == ["installing", "success"]


def test_an_installer_that_raises_something_unexpected_is_reported_not_fatal(tmp_path: Path):
    class Broken(FirmwareInstaller):
        def stage(self, job: InstallJob) -> None:
            raise KeyError("slot")

    reports = Reports()
    broken = Broken(tmp_path / "firmware", factory_version="1.0.0")
    runner = InstallRunner(tmp_path / "update-state.json", {"firmware": broken}, report=reports)

    outcome = runner.install(deployment="7", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="t")

    assert (outcome.result, outcome.code, outcome.version) == (Result.FAILURE, "installer_error", "1.0.0")
    assert reports == [("installing", "", ""), ("failure", "installer_error", "KeyError: 'slot'")]
    assert runner.current() is None


# A driver that dies (SIGKILL) inside every rollback and every commit: without the loop guard every
# restart would try that step again, forever.
DIES_IN_ROLLBACK_OR_COMMIT = """
import os, signal, sys
from pathlib import Path
import pytest
from gridfleet_agent.installers.firmware import FirmwareInstaller
from gridfleet_agent.installers.runner import InstallRunner
from gridfleet_agent.queue import Outbox
from gridfleet_agent.reporting import queue_status_reporter

class Dies(FirmwareInstaller):
    def rollback(self, job):
        os.kill(os.getpid(), signal.SIGKILL)

    def commit(self, job):
        os.kill(os.getpid(), signal.SIGKILL)

state_dir, bundle = Path(sys.argv[1]), sys.argv[2]
runner = InstallRunner(
    state_dir / "update-state.json",
    {"firmware": Dies(state_dir / "firmware", factory_version="1.0.0")},
    report=queue_status_reporter(Outbox(state_dir / "outbox.sqlite3")),
    max_transitions=12,
)
outcome = runner.recover() if bundle == "-" else runner.install(
    deployment="42", kind="firmware", bundle=Path(bundle), target="firmware/gw/2.0.0.tar"
)
print(outcome.result if outcome else None, outcome.code if outcome else "")
"""


@pytest.mark.parametrize("health_check", [UNHEALTHY, HEALTHY], ids=["dies_in_rollback", "dies_in_commit"])
def test_the_loop_guard_stops_a_job_whose_step_kills_the_agent_every_time(tmp_path: Path, health_check: str):
    def run(bundle: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", DIES_IN_ROLLBACK_OR_COMMIT, str(tmp_path), bundle],
            capture_output=True,
            text=True,
            check=False,
        )

    first = run(str(firmware_bundle(tmp_path, "2.0.0", health_check=health_check)))
    assert first.returncode == -9, first.stderr
    restarts = [run("-") for _ in range(12)]
    finished = [r for r in restarts if r.returncode == 0]

    assert finished, [r.stderr[-300:] for r in restarts]
    assert finished[0].stdout.split() == ["error", "update_loop"]
    assert len(restarts) - restarts.index(finished[0]) == len(finished)  # done once, then nothing to do
    assert [r.stdout.strip() for r in finished[1:]] == ["None"] * (len(finished) - 1)
    store = UpdateStateStore(tmp_path / "update-state.json")
    assert store.load().job is None
    assert store.load().applied["firmware"].result == "error"
    reported = [(r.payload["step"], r.payload.get("code")) for r in Outbox(tmp_path / "outbox.sqlite3").pending()]
    assert reported == [("installing", None), ("failure", "update_loop")]


def test_a_retried_target_counts_its_attempts(tmp_path: Path):
    reports = Reports()
    runner = firmware_runner(tmp_path, reports)
    unhealthy = firmware_bundle(tmp_path, "2.0.0", health_check=UNHEALTHY)

    runner.install(deployment="7", kind="firmware", bundle=unhealthy, target="t", sequence=1)
    first = runner.applied()["firmware"]
    runner.install(deployment="7", kind="firmware", bundle=unhealthy, target="t", sequence=2)
    second = runner.applied()["firmware"]
    runner.install(deployment="9", kind="firmware", bundle=unhealthy, target="t", sequence=3)

    assert (first.attempt, first.sequence, first.result) == (1, 1, "rolled_back")
    assert (second.attempt, second.sequence) == (2, 2)
    assert runner.applied()["firmware"].attempt == 1  # another deployment starts counting anew


def test_every_step_is_persisted_with_its_transition_count(tmp_path: Path):
    seen: list[tuple[str, int]] = []
    store_save = UpdateStateStore.save

    class Recording(UpdateStateStore):
        def save(self, state: Any) -> None:
            if state.job is not None:
                seen.append((str(state.job.step), state.job.transitions))
            store_save(self, state)

    runner = firmware_runner(tmp_path, Reports())
    runner.store = Recording(tmp_path / "update-state.json")

    runner.install(deployment="7", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="t")

    steps = ["downloading", "downloaded", "staging", "staged", "switching", "health_check", "committing", "reporting"]
    assert seen == [(step, n) for n, step in enumerate(steps, start=1)]
    assert json.loads((tmp_path / "update-state.json").read_text())["format"] == FORMAT


def test_an_install_interrupted_under_an_older_agent_is_finished_by_this_one(tmp_path: Path):
    """An agent before format 1 kept the job in install-state.json and the results in applied.json."""
    reports = Reports()
    runner = firmware_runner(tmp_path, reports)
    runner.install(
        deployment="5", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0", reboot=True), target="fw-2"
    )
    job = runner.current()
    assert job is not None and job.step is Step.REBOOTING
    legacy_fields = ("deployment", "kind", "bundle_path", "target", "version", "previous_version", "step", "data")
    legacy_job = {name: getattr(job, name) for name in legacy_fields} | {"started_at": job.started_at}
    (tmp_path / "install-state.json").write_text(json.dumps(legacy_job))
    legacy_applied = {"config": {"target": "config/17.tar", "version": "17", "result": "success", "sequence": 4}}
    (tmp_path / "applied.json").write_text(json.dumps(legacy_applied))
    (tmp_path / "update-state.json").unlink()

    restarted = InstallRunner(
        tmp_path / "update-state.json", {"firmware": FirmwareInstaller(tmp_path / "firmware")}, report=reports
    )
    outcome = restarted.recover()

    assert outcome is not None and (outcome.result, outcome.version) == (Result.SUCCESS, "2.0.0")
    assert reports.steps[-2:] == ["committing", "success"]
    applied = restarted.applied()
    assert (applied["config"].version, applied["config"].sequence) == ("17", 4)
    assert applied["firmware"].result == "success"
    assert not (tmp_path / "install-state.json").exists() and not (tmp_path / "applied.json").exists()


def test_a_state_written_by_a_newer_agent_is_set_aside_not_guessed_at(tmp_path: Path):
    path = tmp_path / "update-state.json"
    path.write_text(json.dumps({"format": FORMAT + 1, "job": {"step": "teleporting"}}))

    state = UpdateStateStore(path).load()

    assert state.job is None and state.applied == {}
    assert json.loads((tmp_path / "update-state.json.unreadable").read_text())["format"] == FORMAT + 1
