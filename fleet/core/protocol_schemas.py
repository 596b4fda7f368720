"""The gateway protocol's published JSON Schemas (docs/protocol/schemas/) and the vocabularies in them.

The files are the one definition of what a gateway may send: the uplink validates records with
them, deployments validate status reports with them, and the code that mirrors a vocabulary in a
Python type (monitoring's severities and log levels, the uplink's record kinds and commands,
deployments' status steps) is checked against them when it loads, so the two cannot drift apart.
The agent's contract test validates what the agent emits against the same files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "schemas"


@cache
def schema(name: str) -> dict[str, Any]:
    """The published schema `name` (docs/protocol/schemas/<name>.json)."""
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def _at(name: str, *path: str) -> Any:
    node: Any = schema(name)
    for key in path:
        node = node[key]
    return node


def _enum(name: str, *path: str) -> tuple[str, ...]:
    return tuple(_at(name, *path, "enum"))


RECORD_KINDS = _enum("record", "properties", "kind")
SEVERITIES = _enum("alarm", "properties", "severity")  # most urgent first (ISA-18.2)
ALARM_STATES = _enum("alarm", "properties", "state")
LOG_LEVELS = _enum("log", "properties", "level")  # least severe first
STATUS_STEPS = _enum("status", "properties", "step")
FIELD_DEVICE_KINDS = _enum("inventory", "properties", "field_devices", "items", "properties", "kind")
FIELD_DEVICE_PROTOCOLS = _enum("inventory", "properties", "field_devices", "items", "properties", "protocol")
COMMAND_NAMES = tuple(_at("command-args", "$defs"))


def command_args_schema(name: str) -> dict[str, Any]:
    definition: dict[str, Any] = _at("command-args", "$defs", name)
    return definition


def check_vocabulary(what: str, defined: Iterable[str], published: Iterable[str], *, ordered: bool = True) -> None:
    """Refuse to load code whose copy of a protocol vocabulary differs from the published schema."""
    mine, theirs = [str(value) for value in defined], list(published)
    if (mine != theirs) if ordered else (sorted(mine) != sorted(theirs)):
        raise ImproperlyConfigured(
            f"{what}: the code has {mine}, docs/protocol/schemas has {theirs}; change both together."
        )
