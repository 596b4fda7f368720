"""The agent's configuration file (TOML) and its documented defaults.

Looked up at ``--config``, else ``$GRIDFLEET_AGENT_CONFIG``, else ``/etc/gridfleet/agent.toml``.
Every key is optional except ``agent.server_url``; unknown keys are refused so that a typo does
not silently fall back to a default. ``agent/packaging/agent.toml`` is a commented example.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gridfleet_agent.errors import AgentError
from gridfleet_agent.installers.bundle import BUNDLE_TYPES

DEFAULT_CONFIG_PATH = Path("/etc/gridfleet/agent.toml")


class ConfigError(AgentError):
    """The configuration file is missing, not TOML, or has a bad key or value."""


@dataclass(frozen=True)
class AgentSection:
    server_url: str = ""
    """Base URL of the Gridfleet server, e.g. https://fleet.example.com"""
    state_dir: Path = Path("/var/lib/gridfleet-agent")
    """Identity, queue, TUF metadata, A/B slots and install state live here."""
    hardware_model: str = "generic"
    log_level: str = "info"
    ca_bundle: str = ""
    """PEM file of CAs to trust for the server's TLS certificate; empty = the system store."""


@dataclass(frozen=True)
class UplinkSection:
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 300.0
    """Cap of the exponential reconnect backoff (seconds); each delay is drawn with full jitter."""
    heartbeat_interval: float = 30.0
    """Used until the server's welcome says otherwise."""
    idle_poll: float = 0.5
    """How often the sender looks for newly queued records when idle (seconds)."""


@dataclass(frozen=True)
class UpdatesSection:
    poll_interval: float = 300.0
    """Seconds between TUF checks (docs/protocol/updates.md: 300 s plus up to 10 % jitter)."""
    jitter: float = 0.1
    max_backoff: float = 3600.0
    """Cap of the exponential backoff after failed checks (seconds)."""
    trusted_root: Path = Path("/etc/gridfleet/root.json")
    """Root metadata shipped with the image; without it the agent fetches 1.root.json once after enrollment."""
    factory_firmware_version: str = "0.0.0"
    health_timeout: float = 120.0
    """Seconds the agent waits to be connected again after switching to new firmware."""
    script_timeout: float = 600.0
    defer_hooks: tuple[tuple[str, ...], ...] = ()
    """Commands run before an install; a non-zero exit defers it (its output is the reason)."""
    config_reload_command: tuple[str, ...] = ()
    """Run after a new configuration is switched in; a non-zero exit rolls it back."""
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")


@dataclass(frozen=True)
class QueueSection:
    max_records: int = 50_000
    """Above this, the oldest telemetry is dropped; logs, alarms and status never are."""


DEFAULT_INSTALLERS = {"firmware": "ab-directory", "patch": "ab-directory", "config": "config", "license": "license"}


@dataclass(frozen=True)
class InstallersSection:
    """``[installers]``: which registered installer handles each bundle type, and their own settings."""

    by_kind: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_INSTALLERS))
    """Bundle type -> installer name (an entry point of group ``gridfleet_agent.installers``)."""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Installer name -> its ``[installers.<name>]`` table, handed to its factory."""


@dataclass(frozen=True)
class RemoteAccessSection:
    """Local limits on remote maintenance tunnels (docs/remote-access.md); which targets may be
    reached comes from the signed configuration's ``remote_access``, never from this file."""

    enabled: bool = True
    """false: the site owner forbids remote access; every tunnel is refused, whatever is signed."""
    max_sessions: int = 2
    """Tunnels open at once on this gateway."""
    terminal_command: tuple[str, ...] = ("/bin/login",)
    """Run in a pseudo-terminal for a terminal session (when the signed configuration allows one)."""


@dataclass(frozen=True)
class AgentConfig:
    agent: AgentSection = field(default_factory=AgentSection)
    uplink: UplinkSection = field(default_factory=UplinkSection)
    updates: UpdatesSection = field(default_factory=UpdatesSection)
    queue: QueueSection = field(default_factory=QueueSection)
    installers: InstallersSection = field(default_factory=InstallersSection)
    csip: dict[str, Any] = field(default_factory=dict)
    """The ``[csip]`` table: development fallback for the signed configuration's ``csip`` section,
    which configures the utility link over IEEE 2030.5 (docs/utility-link.md)."""
    remote_access: RemoteAccessSection = field(default_factory=RemoteAccessSection)
    field: dict[str, Any] = field(default_factory=dict)
    """The ``[field]`` table, handed to the field protocol stack (docs/field-devices.md)."""

    @property
    def state_dir(self) -> Path:
        return self.agent.state_dir

    @property
    def server_url(self) -> str:
        return self.agent.server_url.rstrip("/")


_SECTIONS = {
    "agent": AgentSection,
    "uplink": UplinkSection,
    "updates": UpdatesSection,
    "queue": QueueSection,
    "remote_access": RemoteAccessSection,
}


def _coerce(section: str, name: str, default: Any, value: Any) -> Any:
    where = f"[{section}] {name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if isinstance(default, Path):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path string")
        return Path(value)
    if isinstance(default, float | int):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where} must be a number >= 0")
        return type(default)(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        return value
    if name == "defer_hooks":
        if not isinstance(value, list) or not all(_is_command(c) for c in value):
            raise ConfigError(f"{where} must be a list of commands (each a non-empty list of strings)")
        return tuple(tuple(c) for c in value)
    if not _is_command(value) and value != []:
        raise ConfigError(f"{where} must be a command: a list of strings")
    return tuple(value)


def _is_command(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _parse_installers(table: Any) -> InstallersSection:
    if not isinstance(table, dict):
        raise ConfigError("[installers] must be a table")
    by_kind, settings = dict(DEFAULT_INSTALLERS), {}
    for key, value in table.items():
        if key in BUNDLE_TYPES:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"[installers] {key} must be the name of a registered installer")
            by_kind[key] = value
        elif isinstance(value, dict):
            settings[key] = value
        else:
            raise ConfigError(
                f"[installers] {key}: a bundle type ({', '.join(BUNDLE_TYPES)}) = installer name, "
                f"or a table [installers.<installer name>] of that installer's settings"
            )
    return InstallersSection(by_kind, settings)


def parse_config(data: dict[str, Any]) -> AgentConfig:
    unknown = set(data) - set(_SECTIONS) - {"field", "installers", "csip"}
    if unknown:
        sections_known = sorted([*_SECTIONS, "field", "installers", "csip"])
        raise ConfigError(f"unknown section(s) {sorted(unknown)}; known: {sections_known}")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        defaults = cls()
        known = {f.name for f in fields(cls)}
        if bad := set(table) - known:
            raise ConfigError(f"unknown key(s) {sorted(bad)} in [{name}]; known: {sorted(known)}")
        values = {key: _coerce(name, key, getattr(defaults, key), value) for key, value in table.items()}
        sections[name] = cls(**values)
    installers = _parse_installers(data.get("installers", {}))
    config = AgentConfig(
        **sections, installers=installers, field=dict(data.get("field", {})), csip=dict(data.get("csip", {}))
    )
    if not config.agent.server_url.startswith(("http://", "https://")):
        raise ConfigError("[agent] server_url must be set to the server's http(s):// base URL")
    return config


def load_config(path: Path | None = None) -> AgentConfig:
    path = path or Path(os.environ.get("GRIDFLEET_AGENT_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"no configuration file at {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    return parse_config(data)
