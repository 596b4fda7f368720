"""Installers are entry points: a vendor's distribution plugs its own in (here a stand-in for RAUC).

The vendor distribution is real packaging metadata (``acme_gateway-1.0.dist-info`` with an
``entry_points.txt``) on ``sys.path``, found by ``importlib.metadata`` exactly as an installed
wheel would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from gridfleet_agent.config import UpdatesSection, parse_config
from gridfleet_agent.installers.config import ConfigInstaller
from gridfleet_agent.installers.firmware import FirmwareInstaller
from gridfleet_agent.installers.license import LicenseInstaller
from gridfleet_agent.installers.registry import (
    ENTRY_POINT_GROUP,
    OWN_INSTALLERS,
    InstallerContext,
    InstallerNotFoundError,
    load_installers,
    registered,
)
from gridfleet_agent.installers.runner import InstallRunner, Result

from .bundles import firmware_bundle
from .reports import Reports

# A RAUC-like installer: "installs" by recording each call and keeping the booted version in a file.
VENDOR_MODULE = """
import json
from pathlib import Path


class RaucLikeInstaller:
    def __init__(self, directory, compatible):
        self.directory = directory
        self.compatible = compatible
        directory.mkdir(parents=True, exist_ok=True)

    def _log(self, call, job):
        with (self.directory / "calls.jsonl").open("a") as f:
            f.write(json.dumps({"call": call, "version": job.version, "compatible": self.compatible}) + "\\n")

    def active_version(self):
        booted = self.directory / "booted"
        return booted.read_text() if booted.exists() else "1.0.0"

    def stage(self, job):
        self._log("stage", job)

    def needs_reboot(self, job):
        return False

    def switch(self, job):
        self._log("switch", job)
        (self.directory / "booted").write_text(job.version)

    def health_check(self, job):
        self._log("health_check", job)

    def commit(self, job):
        self._log("commit", job)

    def rollback(self, job):
        self._log("rollback", job)

    def discard(self, job):
        self._log("discard", job)


def create(context):
    return RaucLikeInstaller(context.state_dir / context.name, context.settings.get("compatible", ""))
"""


@pytest.fixture
def vendor_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``acme-gateway`` 1.0, registering ``acme-rauc`` in the agent's installer group."""
    site = tmp_path / "site"
    dist_info = site / "acme_gateway-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (site / "acme_gateway_rauc.py").write_text(VENDOR_MODULE)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-gateway\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacme-rauc = acme_gateway_rauc:create\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def context_for(state_dir: Path, config_installers: dict[str, dict[str, object]]) -> object:
    def make(name: str) -> InstallerContext:
        return InstallerContext(
            name=name, state_dir=state_dir, updates=UpdatesSection(), settings=config_installers.get(name, {})
        )

    return make


def test_the_agent_registers_its_own_installers_as_entry_points():
    declared = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.dist.name == "gridfleet-agent"}

    assert declared == OWN_INSTALLERS


def test_a_vendor_installer_registered_as_an_entry_point_handles_firmware(vendor_distribution: Path, tmp_path: Path):
    config = parse_config(
        {
            "agent": {"server_url": "https://fleet.example.com", "state_dir": str(tmp_path / "state")},
            "installers": {"firmware": "acme-rauc", "patch": "acme-rauc", "acme-rauc": {"compatible": "acme-gw-3"}},
        }
    )
    assert registered()["acme-rauc"].dist.name == "acme-gateway"

    installers = load_installers(config.installers.by_kind, context_for(tmp_path / "state", config.installers.settings))
    reports = Reports()
    outcome = InstallRunner(tmp_path / "state" / "update-state.json", installers, report=reports).install(
        deployment="7", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="firmware/gw-2.0.0.tar"
    )

    assert type(installers["firmware"]).__name__ == "RaucLikeInstaller"
    assert installers["patch"] is installers["firmware"]  # one installer for the types mapped to it
    assert isinstance(installers["config"], ConfigInstaller)
    assert isinstance(installers["license"], LicenseInstaller)
    assert (outcome.result, outcome.version) == (Result.SUCCESS, "2.0.0")
    assert reports.steps == ["installing", "success"]
    calls = [json.loads(line) for line in (tmp_path / "state" / "acme-rauc" / "calls.jsonl").read_text().splitlines()]
    assert [c["call"] for c in calls] == ["stage", "switch", "health_check", "commit"]
    assert {c["compatible"] for c in calls} == {"acme-gw-3"}  # its [installers.acme-rauc] settings


def test_by_default_the_built_in_a_b_directory_installer_handles_firmware(tmp_path: Path):
    config = parse_config({"agent": {"server_url": "https://fleet.example.com"}})

    installers = load_installers(config.installers.by_kind, context_for(tmp_path, {}))

    assert config.installers.by_kind["firmware"] == "ab-directory"
    assert isinstance(installers["firmware"], FirmwareInstaller) and installers["patch"] is installers["firmware"]
    assert (tmp_path / "firmware" / "current").is_symlink()


def test_an_installer_nobody_registered_is_refused_with_the_registered_names(tmp_path: Path):
    config = parse_config({"agent": {"server_url": "https://x.example"}, "installers": {"firmware": "swupdate"}})

    with pytest.raises(InstallerNotFoundError, match=r"firmware = 'swupdate'.*'ab-directory'"):
        load_installers(config.installers.by_kind, context_for(tmp_path, {}))


def test_the_installers_command_lists_what_is_registered_and_what_handles_each_bundle_type(
    vendor_distribution: Path, tmp_path: Path
):
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[agent]\nserver_url = "https://fleet.example.com"\nstate_dir = "{tmp_path / "state"}"\n'
        '[installers]\nfirmware = "acme-rauc"\npatch = "missing-one"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(vendor_distribution)}

    def installers(*args: str) -> subprocess.CompletedProcess[str]:
        agent = Path(sys.executable).parent / "gridfleet-agent"
        return subprocess.run(
            [str(agent), "--config", str(config), "installers", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    listed = installers("--json")

    assert listed.returncode == 1  # patch names an installer that is not registered
    answer = json.loads(listed.stdout)
    assert answer["registered"]["acme-rauc"] == {
        "value": "acme_gateway_rauc:create",
        "distribution": "acme-gateway 1.0",
    }
    assert answer["registered"]["ab-directory"]["distribution"].startswith("gridfleet-agent ")
    assert answer["bundle_types"]["firmware"] == {"installer": "acme-rauc", "registered": True}
    assert answer["bundle_types"]["patch"] == {"installer": "missing-one", "registered": False}
    assert "missing-one" in listed.stderr


def test_status_asks_the_vendor_installer_for_the_active_firmware_version(vendor_distribution: Path, tmp_path: Path):
    from gridfleet_agent.daemon import offline_status

    config = parse_config(
        {
            "agent": {"server_url": "https://fleet.example.com", "state_dir": str(tmp_path / "state")},
            "installers": {"firmware": "acme-rauc", "patch": "acme-rauc"},
        }
    )
    (tmp_path / "state" / "acme-rauc").mkdir(parents=True)
    (tmp_path / "state" / "acme-rauc" / "booted").write_text("3.1.4")

    installed = offline_status(config)["installed"]

    assert installed == {"firmware": "3.1.4", "config": None, "license": None}
