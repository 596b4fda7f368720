"""Installers and the install state machine: success, failure, rollback, deferral, reboot."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gridfleet_agent.installers.config import ConfigInstaller, command_reload
from gridfleet_agent.installers.firmware import FirmwareInstaller
from gridfleet_agent.installers.license import LicenseInstaller
from gridfleet_agent.installers.runner import InstallRunner, Result, command_defer_hook
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner

from .bundles import firmware_bundle, make_bundle
from .reports import Reports


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
def firmware(tmp_path: Path) -> FirmwareInstaller:
    return FirmwareInstaller(tmp_path / "firmware", factory_version="1.0.0")


def runner_for(tmp_path: Path, reports: Reports, **installers: Any) -> InstallRunner:
    return InstallRunner(tmp_path / "update-state.json", installers, report=reports)


def active_app(installer: FirmwareInstaller) -> str:
    return (installer.slots.current_link / "app.txt").read_text()


def test_firmware_is_installed_into_the_other_slot_and_committed(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller
):
    runner = runner_for(tmp_path, reports, firmware=firmware)

    outcome = runner.install(
        deployment="7", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="firmware/x/2.0.0.tar"
    )

    assert (outcome.result, outcome.version) == (Result.SUCCESS, "2.0.0")
    assert firmware.active_version() == "2.0.0"
    assert firmware.slots.active_slot() == "b"
    assert active_app(firmware) == "application 2.0.0\n"
    assert reports.steps == ["installing", "success"]
    assert runner.current() is None


def test_failing_health_check_rolls_back_and_reports_its_output(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller
):
    runner = runner_for(tmp_path, reports, firmware=firmware)
    bundle = firmware_bundle(tmp_path, "2.0.0", health_check="echo 'modbus bridge did not start'\nexit 3\n")

    outcome = runner.install(deployment="7", kind="firmware", bundle=bundle, target="t")

    assert (outcome.result, outcome.version, outcome.code) == (Result.ROLLED_BACK, "1.0.0", "health_check_failed")
    assert firmware.active_version() == "1.0.0"
    assert not firmware.slots.slot_dir("b").exists()
    assert reports == [
        ("installing", "", ""),
        ("rolled_back", "health_check_failed", "health-check.sh exited with status 3"),
    ]
    assert "modbus bridge did not start" in reports.logs[1]


def test_each_step_and_the_script_output_go_to_the_agents_log(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller, caplog: pytest.LogCaptureFixture
):
    runner = runner_for(tmp_path, reports, firmware=firmware)
    bundle = firmware_bundle(tmp_path, "2.0.0", health_check="echo 'modbus bridge did not start'\nexit 3\n")

    with caplog.at_level(logging.INFO):
        runner.install(deployment="7", kind="firmware", bundle=bundle, target="firmware/acme/gw-os-2.0.0.tar")

    lines = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith("update firmware/acme/gw-os-2.0.0.tar (firmware")
        and "deployment 7" in line
        and "installing" in line
        for line in lines
    ), lines
    assert any("rolled_back: health_check_failed" in line for line in lines), lines
    assert any(
        "health-check.sh exited with status 3" in line and "modbus bridge did not start" in line for line in lines
    )


def test_agent_not_reconnecting_after_the_switch_rolls_back(tmp_path: Path, reports: Reports):
    probes: list[float] = []

    def never_online(timeout: float) -> bool:
        probes.append(timeout)
        return False

    firmware = FirmwareInstaller(tmp_path / "fw", factory_version="1.0.0", online_probe=never_online, online_timeout=5)
    runner = runner_for(tmp_path, reports, firmware=firmware)

    outcome = runner.install(deployment="7", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="t")

    assert outcome.result is Result.ROLLED_BACK
    assert "did not reconnect" in outcome.message
    assert probes == [5]
    assert firmware.active_version() == "1.0.0"


def test_failing_install_script_leaves_the_active_slot_untouched(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller
):
    bundle = make_bundle(
        tmp_path / "fw.tar.gz",
        {"type": "firmware", "version": "2.0.0", "install": "install.sh"},
        {"install.sh": "echo disk full >&2; exit 1\n"},
    )

    outcome = runner_for(tmp_path, reports, firmware=firmware).install(
        deployment="7", kind="firmware", bundle=bundle, target="t"
    )

    assert (outcome.result, outcome.code) == (Result.FAILURE, "install_failed")
    assert firmware.active_version() == "1.0.0"
    assert firmware.slots.active_slot() == "a"
    assert reports.steps == ["installing", "failure"]


def test_patch_is_applied_on_a_copy_of_the_active_version(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller
):
    runner = runner_for(tmp_path, reports, firmware=firmware, patch=firmware)
    runner.install(deployment="1", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="t")
    patch = make_bundle(
        tmp_path / "patch.tar.gz",
        {"type": "patch", "version": "2.0.1", "install": "apply.sh"},
        {"apply.sh": 'echo "openssl fixed" > "$GRIDFLEET_SLOT_DIR/security.txt"\n'},
    )

    outcome = runner.install(deployment="2", kind="patch", bundle=patch, target="t")

    assert (outcome.result, firmware.active_version()) == (Result.SUCCESS, "2.0.1")
    assert active_app(firmware) == "application 2.0.0\n"
    assert (firmware.slots.current_link / "security.txt").read_text() == "openssl fixed\n"


def test_bundle_of_another_type_is_refused(tmp_path: Path, reports: Reports, firmware: FirmwareInstaller):
    bundle = make_bundle(tmp_path / "c.tar.gz", {"type": "config", "version": "3"})

    outcome = runner_for(tmp_path, reports, firmware=firmware).install(
        deployment="1", kind="firmware", bundle=bundle, target="t"
    )

    assert (outcome.result, outcome.code) == (Result.FAILURE, "invalid_bundle")
    assert "declares type 'config'" in outcome.message


def test_defer_hook_postpones_the_install(tmp_path: Path, reports: Reports, firmware: FirmwareInstaller):
    hook = command_defer_hook(["/bin/sh", "-c", "echo export curtailment active; exit 1"])
    runner = InstallRunner(tmp_path / "state.json", {"firmware": firmware}, report=reports, defer_hooks=(hook,))

    outcome = runner.install(deployment="1", kind="firmware", bundle=firmware_bundle(tmp_path, "2.0.0"), target="t")

    assert (outcome.result, outcome.message) == (Result.DEFERRED, "export curtailment active")
    assert firmware.active_version() == "1.0.0"
    assert reports == [("deferred", "deferred_by_hook", "export curtailment active")]


def test_bundle_that_needs_a_reboot_is_verified_and_committed_after_restart(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller
):
    reboots: list[bool] = []
    runner = InstallRunner(
        tmp_path / "state.json", {"firmware": firmware}, report=reports, reboot=lambda: reboots.append(True)
    )
    bundle = firmware_bundle(tmp_path, "2.0.0", reboot=True)

    assert runner.install(deployment="1", kind="firmware", bundle=bundle, target="t").result is Result.REBOOTING
    assert reboots == [True]

    restarted = InstallRunner(
        tmp_path / "state.json", {"firmware": FirmwareInstaller(tmp_path / "firmware")}, report=reports
    )
    outcome = restarted.recover()

    assert outcome is not None and (outcome.result, outcome.version) == (Result.SUCCESS, "2.0.0")
    assert reports.steps == ["installing", "rebooting", "committing", "success"]


# -- configuration ---------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["export_limit_kw"],
    "properties": {"export_limit_kw": {"type": "number", "minimum": 0}},
}


def config_bundle(directory: Path, version: str, config: dict[str, Any]) -> Path:
    return make_bundle(
        directory / f"config-{version}.tar.gz",
        {"type": "config", "version": version},
        {"config.json": json.dumps(config), "schema.json": json.dumps(SCHEMA)},
    )


def test_valid_config_is_switched_in_and_services_reloaded(tmp_path: Path, reports: Reports):
    reloaded: list[dict[str, Any]] = []
    config = ConfigInstaller(tmp_path / "config", reload=lambda path: reloaded.append(json.loads(path.read_text())))
    runner = runner_for(tmp_path, reports, config=config)

    outcome = runner.install(
        deployment="1", kind="config", bundle=config_bundle(tmp_path, "17", {"export_limit_kw": 5}), target="t"
    )

    assert (outcome.result, config.active_version()) == (Result.SUCCESS, "17")
    assert json.loads(config.config_file.read_text()) == {"export_limit_kw": 5}
    assert reloaded == [{"export_limit_kw": 5}]


def test_config_failing_its_schema_is_refused_and_the_old_one_kept(tmp_path: Path, reports: Reports):
    config = ConfigInstaller(tmp_path / "config")
    runner = runner_for(tmp_path, reports, config=config)
    runner.install(
        deployment="1", kind="config", bundle=config_bundle(tmp_path, "17", {"export_limit_kw": 5}), target="t"
    )

    outcome = runner.install(
        deployment="2", kind="config", bundle=config_bundle(tmp_path, "18", {"export_limit_kw": -1}), target="t"
    )

    assert (outcome.result, outcome.code) == (Result.FAILURE, "invalid_config")
    assert "export_limit_kw" in outcome.message
    assert config.active_version() == "17"
    assert json.loads(config.config_file.read_text()) == {"export_limit_kw": 5}


def test_failed_reload_rolls_back_and_reloads_the_previous_config(tmp_path: Path, reports: Reports):
    seen = tmp_path / "reloads.log"
    # The reload command logs each config it sees and refuses export_limit_kw 9.
    script = (
        f'cat "$GRIDFLEET_CONFIG" >> {seen}; echo >> {seen}; '
        """grep -q '"export_limit_kw": 9' "$GRIDFLEET_CONFIG" && exit 1; exit 0"""
    )
    config = ConfigInstaller(tmp_path / "config", reload=command_reload(["/bin/sh", "-c", script]))
    runner = runner_for(tmp_path, reports, config=config)
    runner.install(
        deployment="1", kind="config", bundle=config_bundle(tmp_path, "17", {"export_limit_kw": 5}), target="t"
    )

    outcome = runner.install(
        deployment="2", kind="config", bundle=config_bundle(tmp_path, "18", {"export_limit_kw": 9}), target="t"
    )

    assert (outcome.result, outcome.code) == (Result.ROLLED_BACK, "reload_failed")
    assert config.active_version() == "17"
    assert [json.loads(line) for line in seen.read_text().splitlines()] == [
        {"export_limit_kw": 5},
        {"export_limit_kw": 9},
        {"export_limit_kw": 5},
    ]


# -- license ---------------------------------------------------------------------------------


@pytest.fixture
def license_signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


def channel_key(signer: CryptoSigner) -> dict[str, Any]:
    """The license key as the update channel publishes it (TUF key format with its keyid)."""
    return {"keyid": signer.public_key.keyid, **signer.public_key.to_dict()}


def license_bundle(
    directory: Path, signer: CryptoSigner, *, serial: str = "GW-1", days: int = 365, version: int = 3
) -> Path:
    now = datetime.now(UTC)
    signed = {
        "format": "gridfleet-license/1",
        "token": "d3c1b0a5e7f24c8e9a4b6d2f0e1c3a57",
        "serial": serial,
        "version": version,
        "not_before": (now - timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        "not_after": (now + timedelta(days=days)).isoformat().replace("+00:00", "Z"),
        "limits": {"field_devices": 20},
        "features": ["export_limit"],
    }
    signature = signer.sign(encode_canonical(signed).encode())
    document = {"signed": signed, "signatures": [signature.to_dict()]}
    return make_bundle(
        directory / f"license-{serial}-{days}.tar.gz",
        {"type": "license", "version": str(version)},
        {"license.json": json.dumps(document)},
    )


def test_signed_license_is_installed_and_its_limits_exposed(tmp_path: Path, reports: Reports, license_signer):
    installer = LicenseInstaller(tmp_path / "license", public_key=lambda: channel_key(license_signer), serial="GW-1")
    assert installer.limits() == {}

    outcome = runner_for(tmp_path, reports, license=installer).install(
        deployment="1", kind="license", bundle=license_bundle(tmp_path, license_signer), target="t"
    )

    assert (outcome.result, installer.active_version()) == (Result.SUCCESS, "3")
    assert installer.limits() == {"field_devices": 20}
    active = installer.active_license()
    assert active is not None and active.features == ("export_limit",)


@pytest.mark.parametrize(
    ("bundle_args", "message"),
    [
        ({"serial": "GW-2"}, "is for gateway 'GW-2'"),
        ({"days": -1}, "expired"),
        ({"signed_by_other_key": True}, "signature does not verify"),
    ],
)
def test_invalid_license_is_refused(tmp_path: Path, reports: Reports, license_signer, bundle_args, message):
    other = bundle_args.pop("signed_by_other_key", False)
    signer = CryptoSigner.generate_ed25519() if other else license_signer
    installer = LicenseInstaller(tmp_path / "license", public_key=lambda: channel_key(license_signer), serial="GW-1")

    outcome = runner_for(tmp_path, reports, license=installer).install(
        deployment="1", kind="license", bundle=license_bundle(tmp_path, signer, **bundle_args), target="t"
    )

    assert (outcome.result, outcome.code) == (Result.FAILURE, "invalid_license")
    assert message in outcome.message
    assert installer.limits() == {}


def test_bundle_member_not_matching_the_manifest_is_refused(
    tmp_path: Path, reports: Reports, firmware: FirmwareInstaller
):
    bundle = make_bundle(
        tmp_path / "fw.tar.gz",
        {"type": "firmware", "version": "2.0.0", "files": {"rootfs.img": {"sha256": "0" * 64, "length": 4}}},
        {"rootfs.img": b"root"},
    )

    outcome = runner_for(tmp_path, reports, firmware=firmware).install(
        deployment="1", kind="firmware", bundle=bundle, target="t"
    )

    assert (outcome.result, outcome.code) == (Result.FAILURE, "invalid_bundle")
    assert "rootfs.img does not match" in outcome.message
    assert firmware.active_version() == "1.0.0"
