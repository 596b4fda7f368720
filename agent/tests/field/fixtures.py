"""Field stack test helpers, shared with the server-side contract test (tests/agent/field/)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gridfleet_agent_simulators
import pytest
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

Record = dict[str, Any]


def simulators_env() -> dict[str, str]:
    """For a subprocess running a simulator: finds it whether installed or from source (agent/simulators/src)."""
    source = str(Path(gridfleet_agent_simulators.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}


class RecordingSink:
    """Stands in for the agent's queue: keeps every record the stack emits."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def __call__(self, record: Record) -> None:
        self.records.append(record)

    def _since(self, after: Record | None) -> list[Record]:
        start = next(i for i, r in enumerate(self.records) if r is after) + 1 if after else 0
        return self.records[start:]

    def of_kind(self, kind: str) -> list[Record]:
        return [r for r in self.records if r["kind"] == kind]

    async def wait_for(self, kind: str, timeout: float = 5.0, after: Record | None = None, **payload: Any) -> Record:
        """The first record of `kind` (after the record `after`, if given) whose payload has
        these values; waits for it to arrive."""

        async def first_match() -> Record:
            while True:
                for record in self._since(after):
                    if record["kind"] == kind and all(record["payload"].get(k) == v for k, v in payload.items()):
                        return record
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(first_match(), timeout)

    async def wait_for_points(self, timeout: float = 5.0, after: Record | None = None, **points: Any) -> Record:
        """The first telemetry record (after the record `after`, if given) carrying these point values."""

        async def first_match() -> Record:
            while True:
                for record in self._since(after):
                    if record["kind"] == "telemetry" and all(
                        record["payload"]["points"].get(k) == v for k, v in points.items()
                    ):
                        return record
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(first_match(), timeout)


@pytest.fixture
async def simulator() -> AsyncIterator[SunSpecSimulator]:
    async with SunSpecSimulator(port=0) as sim:
        yield sim


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def _device_entry(sim: SunSpecSimulator, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "inv-1",
        "kind": "inverter",
        "protocol": "sunspec-tcp",
        "host": sim.host,
        "port": sim.port,
        "unit_id": sim.unit_id,
        "poll_interval": 0.05,
        "timeout": 1.0,
        "debounce_polls": 2,
        "comm_loss_after": 2,
        **overrides,
    }


@pytest.fixture
def device_entry() -> Any:
    """Builds a field config device entry for a simulator, tuned for fast tests."""
    return _device_entry
