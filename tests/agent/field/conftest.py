from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gridfleet_agent.field.simulator import SunSpecSimulator

Record = dict[str, Any]


class RecordingSink:
    """Stands in for the agent's queue: keeps every record the stack emits."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def __call__(self, record: Record) -> None:
        self.records.append(record)

    def of_kind(self, kind: str) -> list[Record]:
        return [r for r in self.records if r["kind"] == kind]

    async def wait_for(self, kind: str, timeout: float = 5.0, **payload: Any) -> Record:
        """The first record of `kind` whose payload has these values (waits for it to arrive)."""

        async def first_match() -> Record:
            while True:
                for record in self.of_kind(kind):
                    if all(record["payload"].get(k) == v for k, v in payload.items()):
                        return record
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(first_match(), timeout)

    async def wait_for_points(self, timeout: float = 5.0, **points: Any) -> Record:
        """The first telemetry record carrying these point values."""

        async def first_match() -> Record:
            while True:
                for record in self.of_kind("telemetry"):
                    if all(record["payload"]["points"].get(k) == v for k, v in points.items()):
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
