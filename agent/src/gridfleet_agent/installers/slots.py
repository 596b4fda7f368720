"""A/B slot directories: two complete versions side by side, one active through a symlink.

Layout under ``root``::

    slots/a/  slots/b/     each holds one version and its VERSION file
    current -> slots/a     the active slot; switched by an atomic symlink replace

Readers (the DER stack, the agent itself) always go through ``current``, so they see either the
old or the new version as a whole. The slot the previous version lives in is kept until the next
install, which is what makes rollback instant.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gridfleet_agent.fsutil import fsync_dir
from gridfleet_agent.installers.runner import InstallJob

SLOTS = ("a", "b")


class SlotStore:
    def __init__(self, root: Path, *, factory_version: str | None = None) -> None:
        self.root = root
        if not self.current_link.is_symlink():
            first = self.slot_dir("a")
            first.mkdir(parents=True, exist_ok=True)
            if factory_version is not None:
                (first / "VERSION").write_text(factory_version)
            self.point_current_at("a")

    @property
    def current_link(self) -> Path:
        return self.root / "current"

    def slot_dir(self, slot: str) -> Path:
        return self.root / "slots" / slot

    def active_slot(self) -> str:
        return Path(os.readlink(self.current_link)).name

    def active_version(self) -> str | None:
        try:
            return (self.current_link / "VERSION").read_text().strip() or None
        except FileNotFoundError:
            return None

    def point_current_at(self, slot: str) -> None:
        tmp = self.root / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("slots") / slot, tmp)
        os.replace(tmp, self.current_link)
        fsync_dir(self.root)

    def prepare(self, job: InstallJob, *, copy_active: bool = False) -> Path:
        """Empty the inactive slot (or fill it with a copy of the active one) and return it.

        The slot choice is recorded in ``job.data`` on first use, so a resumed job keeps it.
        """
        if "target_slot" not in job.data:
            active = self.active_slot()
            job.data.update(previous_slot=active, target_slot=next(s for s in SLOTS if s != active))
        slot = self.staged_dir(job)
        shutil.rmtree(slot, ignore_errors=True)
        if copy_active:
            shutil.copytree(self.slot_dir(job.data["previous_slot"]), slot, symlinks=True)
        else:
            slot.mkdir(parents=True)
        return slot

    def staged_dir(self, job: InstallJob) -> Path:
        return self.slot_dir(job.data["target_slot"])

    def seal(self, job: InstallJob) -> None:
        """Write VERSION and flush the staged slot, so a switch after a power cut finds whole files."""
        slot = self.staged_dir(job)
        (slot / "VERSION").write_text(job.version)
        for directory, _dirs, files in os.walk(slot):
            for name in files:
                path = Path(directory, name)
                if path.is_symlink():
                    continue
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_dir(Path(directory))

    def switch(self, job: InstallJob) -> None:
        self.point_current_at(job.data["target_slot"])

    def rollback(self, job: InstallJob) -> None:
        if "previous_slot" in job.data:
            self.point_current_at(job.data["previous_slot"])

    def discard(self, job: InstallJob) -> None:
        target = job.data.get("target_slot")
        if target and target != self.active_slot():
            shutil.rmtree(self.slot_dir(target), ignore_errors=True)
