"""One root for the agent's errors: every exception class the package defines derives from AgentError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import gridfleet_agent
from gridfleet_agent.errors import AgentError


def agent_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(gridfleet_agent.__path__, prefix="gridfleet_agent.")
        if not info.name.endswith("__main__")  # running those starts the CLI
    ]


def test_every_exception_the_agent_defines_is_an_agent_error() -> None:
    defined = {
        cls
        for name in agent_modules()
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith("gridfleet_agent.")
    }

    assert len(defined) > 10  # the walk found the package's modules
    assert [cls.__qualname__ for cls in defined if not issubclass(cls, AgentError)] == []
