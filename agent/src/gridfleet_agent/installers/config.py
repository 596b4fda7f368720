"""Configuration installer: validate against the bundle's schema, switch atomically, reload, or roll back.

A config bundle holds ``config.json`` (the settings for the gateway's services), the rendered
files under ``files/``, and, when the bundle carries it, ``schema.json`` (a JSON Schema the
settings must satisfy; the server validates too, the agent re-checks what it is about to apply).
The gateway's services read ``<root>/current/config.json`` and ``<root>/current/files/``; the
previous version stays in the other slot, so a failed reload switches straight back and reloads
again.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from gridfleet_agent.installers.bundle import BundleError, extract
from gridfleet_agent.installers.runner import InstallError, InstallJob
from gridfleet_agent.installers.slots import SlotStore

if TYPE_CHECKING:
    from gridfleet_agent.installers.registry import InstallerContext

ReloadHook = Callable[[Path], None]
"""Makes the services re-read the configuration file given; raises ``InstallError`` on failure."""


def command_reload(command: list[str], *, timeout: float = 60.0) -> ReloadHook:
    """A reload hook that runs ``command`` with ``GRIDFLEET_CONFIG`` set to the config file."""

    def reload(config_file: Path) -> None:
        try:
            done = subprocess.run(
                command,
                env={"GRIDFLEET_CONFIG": str(config_file), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise InstallError("reload_failed", f"reload command {command[0]} failed: {e}") from e
        if done.returncode != 0:
            raise InstallError(
                "reload_failed",
                f"reload command exited with status {done.returncode}",
                log_excerpt=done.stdout,
            )

    return reload


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise InstallError("invalid_bundle", f"config bundle has no {what}") from e
    except json.JSONDecodeError as e:
        raise InstallError("invalid_config", f"{what} is not JSON: {e}") from e


class ConfigInstaller:
    def __init__(self, root: Path, *, reload: ReloadHook | None = None) -> None:
        self.slots = SlotStore(root)
        self._reload = reload
        #: In-process consumers of the configuration (the agent's field stack), called after the
        #: reload command with the same file; raising InstallError fails the install like it.
        self.on_reload: list[ReloadHook] = []

    def _reload_all(self, config_file: Path) -> None:
        for hook in (self._reload, *self.on_reload):
            if hook is not None:
                hook(config_file)

    @property
    def config_file(self) -> Path:
        return self.slots.current_link / "config.json"

    def active_version(self) -> str | None:
        return self.slots.active_version()

    def stage(self, job: InstallJob) -> None:
        slot = self.slots.prepare(job)
        try:
            extract(Path(job.bundle_path), slot)
        except BundleError as e:
            raise InstallError("invalid_bundle", str(e)) from e
        config = _load_json(slot / "config.json", "config.json")
        if (slot / "schema.json").exists():
            self._validate(config, _load_json(slot / "schema.json", "schema.json"))
        self.slots.seal(job)

    @staticmethod
    def _validate(config: Any, schema: Any) -> None:
        try:
            jsonschema.validate(config, schema)
        except jsonschema.SchemaError as e:
            raise InstallError("invalid_config", f"schema.json is not a valid JSON Schema: {e.message}") from e
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise InstallError("invalid_config", f"config.json at {where}: {e.message}") from e

    def needs_reboot(self, job: InstallJob) -> bool:
        return False

    def switch(self, job: InstallJob) -> None:
        self.slots.switch(job)

    def health_check(self, job: InstallJob) -> None:
        self._reload_all(self.config_file)

    def commit(self, job: InstallJob) -> None:
        """The new configuration is live and reloaded; the old slot is kept until the next install."""

    def rollback(self, job: InstallJob) -> None:
        self.slots.rollback(job)
        if self.config_file.exists():
            # The previous config is back on disk; the services pick it up on their next start.
            with contextlib.suppress(InstallError):
                self._reload_all(self.config_file)

    def discard(self, job: InstallJob) -> None:
        self.slots.discard(job)


def create(context: InstallerContext) -> ConfigInstaller:
    """The ``config`` entry point: slots under ``<state_dir>/config``, reloaded by ``config_reload_command``."""
    command = context.updates.config_reload_command
    return ConfigInstaller(context.state_dir / "config", reload=command_reload(list(command)) if command else None)
