"""An agent killed (SIGKILL) at every step of an install recovers to a consistent version on restart.

A driver process runs a real install and kills itself right before or right after the state
machine persists a given step; a fresh runner (the restarted agent) then recovers. The gateway
must end on the old or the new version as a whole, never a mix, with the outcome reported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gridfleet_agent.installers.firmware import FirmwareInstaller
from gridfleet_agent.installers.runner import InstallRunner
from gridfleet_agent.queue import Outbox
from gridfleet_agent.reporting import queue_status_reporter

from .bundles import firmware_bundle

DRIVER = """
import os, signal, sys
from pathlib import Path
from gridfleet_agent import update_state
from gridfleet_agent.installers.firmware import FirmwareInstaller
from gridfleet_agent.installers.runner import InstallRunner
from gridfleet_agent.queue import Outbox
from gridfleet_agent.reporting import queue_status_reporter

state_dir, bundle, when, step = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
save = update_state.UpdateStateStore.save

def save_then_maybe_die(self, state):
    here = state.job.step if state.job is not None else "idle"
    if when == "before" and here == step:
        os.kill(os.getpid(), signal.SIGKILL)
    save(self, state)
    if when == "after" and here == step:
        os.kill(os.getpid(), signal.SIGKILL)

update_state.UpdateStateStore.save = save_then_maybe_die
install = InstallRunner(
    state_dir / "update-state.json",
    {"firmware": FirmwareInstaller(state_dir / "firmware", factory_version="1.0.0")},
    report=queue_status_reporter(Outbox(state_dir / "outbox.sqlite3")),
)
install.install(deployment="42", kind="firmware", bundle=Path(bundle), target="firmware/gw/2.0.0.tar")
"""

OLD, NEW = "1.0.0", "2.0.0"
HEALTHY, UNHEALTHY = "exit 0\n", "exit 1\n"


@pytest.mark.parametrize(
    ("health_check", "when", "step", "expected_version", "final_report"),
    [
        (HEALTHY, "after", "downloading", OLD, None),
        (HEALTHY, "after", "downloaded", OLD, None),
        (HEALTHY, "before", "staging", OLD, None),
        (HEALTHY, "after", "staging", OLD, "failure"),
        (HEALTHY, "after", "staged", OLD, "failure"),
        (HEALTHY, "after", "switching", OLD, "rolled_back"),
        (HEALTHY, "before", "health_check", OLD, "rolled_back"),
        (HEALTHY, "after", "health_check", OLD, "rolled_back"),
        (HEALTHY, "before", "committing", OLD, "rolled_back"),
        (HEALTHY, "after", "committing", NEW, "success"),
        (HEALTHY, "before", "reporting", NEW, "success"),
        (HEALTHY, "after", "reporting", NEW, "success"),
        (HEALTHY, "before", "idle", NEW, "success"),
        (HEALTHY, "after", "idle", NEW, "success"),
        (UNHEALTHY, "after", "rolling_back", OLD, "rolled_back"),
        (UNHEALTHY, "after", "reporting", OLD, "rolled_back"),
        (UNHEALTHY, "before", "idle", OLD, "rolled_back"),
    ],
)
def test_install_killed_at_each_step_recovers_to_a_whole_version(
    tmp_path: Path, health_check: str, when: str, step: str, expected_version: str, final_report: str | None
):
    bundle = firmware_bundle(tmp_path, NEW, health_check=health_check)
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path), str(bundle), when, step], capture_output=True, check=False
    )
    assert killed.returncode == -9, killed.stderr.decode()

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    firmware = FirmwareInstaller(tmp_path / "firmware")
    restarted = InstallRunner(
        tmp_path / "update-state.json", {"firmware": firmware}, report=queue_status_reporter(outbox)
    )
    restarted.recover()

    assert restarted.current() is None
    if final_report is not None:  # the outcome is recorded in the same state the job was closed in
        assert restarted.applied()["firmware"].result == final_report
    assert firmware.active_version() == expected_version
    app = firmware.slots.current_link / "app.txt"  # only the new version ships app.txt
    assert (app.read_text() if app.exists() else None) == ("application 2.0.0\n" if expected_version == NEW else None)
    reported = [r.payload["step"] for r in outbox.pending()]
    assert (reported[-1] if reported else None) == final_report
