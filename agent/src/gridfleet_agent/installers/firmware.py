"""Firmware and security-patch installer on A/B slots (see ``slots``).

A firmware bundle is unpacked into the inactive slot; a patch bundle is applied on a copy of the
active slot. The bundle's install script (if any) runs inside the new slot before the switch; its
health check runs after the switch, followed by "the agent is connected to the server again".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gridfleet_agent.installers.bundle import BundleError, extract, read_manifest
from gridfleet_agent.installers.runner import InstallError, InstallJob
from gridfleet_agent.installers.scripts import run_script
from gridfleet_agent.installers.slots import SlotStore

if TYPE_CHECKING:
    from gridfleet_agent.installers.registry import InstallerContext

OnlineProbe = Callable[[float], bool]
"""Waits up to the given seconds for the agent to be connected to the server again."""


class FirmwareInstaller:
    def __init__(
        self,
        root: Path,
        *,
        factory_version: str = "0.0.0",
        online_probe: OnlineProbe | None = None,
        online_timeout: float = 120.0,
        script_timeout: float = 600.0,
    ) -> None:
        self.slots = SlotStore(root, factory_version=factory_version)
        self._online_probe = online_probe
        self._online_timeout = online_timeout
        self._script_timeout = script_timeout

    def active_version(self) -> str | None:
        return self.slots.active_version()

    def stage(self, job: InstallJob) -> None:
        slot = self.slots.prepare(job, copy_active=job.kind == "patch")
        bundle = Path(job.bundle_path)
        try:
            manifest = extract(bundle, slot)
        except BundleError as e:
            raise InstallError("invalid_bundle", str(e)) from e
        if manifest.install:
            self._run(job, manifest.install, code="install_failed")
        self.slots.seal(job)

    def needs_reboot(self, job: InstallJob) -> bool:
        return read_manifest(Path(job.bundle_path)).reboot

    def switch(self, job: InstallJob) -> None:
        self.slots.switch(job)

    def health_check(self, job: InstallJob) -> None:
        manifest = read_manifest(Path(job.bundle_path))
        if manifest.health_check:
            self._run(job, manifest.health_check, code="health_check_failed")
        if self._online_probe is not None and not self._online_probe(self._online_timeout):
            timeout = self._online_timeout
            raise InstallError("health_check_failed", f"agent did not reconnect to the server within {timeout:.0f} s")

    def commit(self, job: InstallJob) -> None:
        """Nothing to undo any more; the previous slot stays until the next install overwrites it."""

    def rollback(self, job: InstallJob) -> None:
        self.slots.rollback(job)

    def discard(self, job: InstallJob) -> None:
        self.slots.discard(job)

    def _run(self, job: InstallJob, script: str, *, code: str) -> None:
        slot = self.slots.staged_dir(job)
        env = {
            "GRIDFLEET_SLOT_DIR": str(slot),
            "GRIDFLEET_PREVIOUS_SLOT_DIR": str(self.slots.slot_dir(job.data["previous_slot"])),
            "GRIDFLEET_BUNDLE_VERSION": job.version,
            "GRIDFLEET_PREVIOUS_VERSION": job.previous_version or "",
        }
        run_script(slot / script, cwd=slot, env=env, timeout=self._script_timeout, code=code)


def create(context: InstallerContext) -> FirmwareInstaller:
    """The ``ab-directory`` entry point: A/B slots under ``<state_dir>/firmware``."""
    updates = context.updates
    return FirmwareInstaller(
        context.state_dir / "firmware",
        factory_version=updates.factory_firmware_version,
        online_probe=context.online_probe,
        online_timeout=updates.health_timeout,
        script_timeout=updates.script_timeout,
    )
