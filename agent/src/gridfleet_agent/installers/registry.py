"""Installers are plugins: each bundle type is handled by an installer registered under an entry point.

The group is ``gridfleet_agent.installers``; an entry point's name is the installer's name and its
value a factory, ``create(context: InstallerContext) -> Installer``. The agent ships three,
declared in ``agent/pyproject.toml`` like any third-party one:

==============  ==================================================  =====================
name            what it does                                        handles by default
==============  ==================================================  =====================
ab-directory    A/B slot directories switched by a symlink          firmware, patch
config          validated configuration, switched and reloaded      config
license         server-signed license, verified offline             license
==============  ==================================================  =====================

A gateway vendor hands firmware to RAUC, SWUpdate or a Mender update module by shipping a
distribution that registers, for example, ``rauc = "acme_gateway.rauc:create"`` and setting
``[installers] firmware = "rauc"`` (and ``patch``) in ``agent.toml``; ``[installers.rauc]`` is
handed to that factory as ``context.settings``. ``gridfleet-agent installers`` lists what is
registered and which installer handles each bundle type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from gridfleet_agent.config import UpdatesSection
from gridfleet_agent.errors import AgentError
from gridfleet_agent.installers.bundle import BUNDLE_TYPES
from gridfleet_agent.installers.runner import Installer

ENTRY_POINT_GROUP = "gridfleet_agent.installers"

# The agent's own entry points, as agent/pyproject.toml declares them. Used only when the installed
# metadata lacks them (an editable install made before they were declared): the built-ins then still
# load, and a test checks that both lists agree.
OWN_INSTALLERS = {
    "ab-directory": "gridfleet_agent.installers.firmware:create",
    "config": "gridfleet_agent.installers.config:create",
    "license": "gridfleet_agent.installers.license:create",
}


class InstallerNotFoundError(AgentError):
    """The configuration names an installer no installed distribution registers."""

    code = "installer_not_found"


class InstallerLoadError(AgentError):
    """A registered installer could not be imported or set up; the message says which and why."""

    code = "installer_load_failed"


@dataclass(frozen=True)
class InstallerContext:
    """What a factory gets to build its installer."""

    name: str
    """The name the installer is registered (and configured) under."""
    state_dir: Path
    """The agent's state directory; keep your own files under ``state_dir / name``."""
    updates: UpdatesSection
    """The ``[updates]`` settings (timeouts, factory firmware version, reload command...)."""
    serial: str = ""
    """The gateway's serial (the license installer checks it)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The ``[installers.<name>]`` table of ``agent.toml``, as parsed from TOML."""
    online_probe: Callable[[float], bool] | None = None
    """Waits up to the given seconds for the agent to be connected to the server again."""
    license_key: Callable[[], dict[str, Any] | None] = lambda: None
    """The license public key from the update channel (TUF key format), once known."""


InstallerFactory = Callable[[InstallerContext], Installer]


def registered() -> dict[str, EntryPoint]:
    """Every installer registered in this environment, by name."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, value in OWN_INSTALLERS.items():
        found.setdefault(name, EntryPoint(name, value, ENTRY_POINT_GROUP))
    return found


def load_installer(name: str, context: InstallerContext) -> Installer:
    """The installer registered as ``name``, built by its factory."""
    available = registered()
    entry = available.get(name)
    if entry is None:
        raise InstallerNotFoundError(
            f"no installer {name!r} is registered (entry point group {ENTRY_POINT_GROUP}); "
            f"registered: {sorted(available)}"
        )
    try:
        factory: InstallerFactory = entry.load()
        return factory(context)
    except AgentError:
        raise
    except Exception as e:  # an import error or a bug in a third-party factory: say which one
        raise InstallerLoadError(f"installer {name!r} ({entry.value}) failed to load: {e!r}") from e


def load_installers(by_kind: Mapping[str, str], context: Callable[[str], InstallerContext]) -> dict[str, Installer]:
    """One installer per configured name (shared by the bundle types mapped to it), by bundle type."""
    instances: dict[str, Installer] = {}
    installers: dict[str, Installer] = {}
    for kind in BUNDLE_TYPES:
        name = by_kind[kind]
        if name not in instances:
            try:
                instances[name] = load_installer(name, context(name))
            except InstallerNotFoundError as e:
                raise InstallerNotFoundError(f"[installers] {kind} = {name!r}: {e}") from e
        installers[kind] = instances[name]
    return installers
