"""The declared public API: every name in ``__all__`` imports, and agent/README.md documents it."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import gridfleet_agent
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PUBLIC_MODULES = [
    "gridfleet_agent",
    "gridfleet_agent.field",
    "gridfleet_agent.csip",
    "gridfleet_agent.installers.bundle",
]


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_name_a_public_module_declares_exists(module: str) -> None:
    imported = importlib.import_module(module)

    assert imported.__all__, f"{module} declares no public API"
    assert [name for name in imported.__all__ if not hasattr(imported, name)] == []


def test_the_readme_documents_every_name_of_the_package_api() -> None:
    documented = set(re.findall(r"`([A-Za-z_]\w*)`", README.read_text()))

    assert sorted(set(gridfleet_agent.__all__) - documented) == []


def test_importing_the_agent_loads_neither_its_extras_nor_the_simulators() -> None:
    """A production gateway without the extras can import the package and run the daemon."""
    optional = (
        *("pymodbus", "sunspec2", "paho", "py20305", "dnp3", "c104", "asyncua", "aiomqtt"),
        *("gridfleet_agent.field", "gridfleet_agent.csip", "gridfleet_agent.scada", "gridfleet_agent.cloud"),
        "gridfleet_agent_simulators",
    )
    code = f"import sys, gridfleet_agent; print(sorted(m for m in {optional!r} if m in sys.modules))"

    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert loaded.stdout.strip() == "[]"
