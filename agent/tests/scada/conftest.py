"""A simulated SunSpec inverter polled by the real field stack, seen as a site by the SCADA services."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from gridfleet_agent.field import FieldStack
from gridfleet_agent.scada.site import SiteControls, SiteDevice, SiteImage
from gridfleet_agent.scada.status import ProtocolService
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from ..field.fixtures import device_entry, simulator  # noqa: F401 - fixtures shared with the field tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Site:
    simulator: SunSpecSimulator
    stack: FieldStack
    image: SiteImage
    controls: SiteControls
    records: list[dict[str, Any]]

    async def wait_for_value(self, key: str, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        async def until() -> Any:
            while not predicate(value := self.image.values.get(key)):
                await asyncio.sleep(0.02)
            return value

        return await asyncio.wait_for(until(), timeout)


@pytest.fixture
async def site(simulator: SunSpecSimulator, device_entry: Any) -> AsyncIterator[Site]:  # noqa: F811 - fixtures
    records: list[dict[str, Any]] = []
    image = SiteImage([SiteDevice("inv-1", "inverter")])

    def sink(record: dict[str, Any]) -> None:
        records.append(record)
        image.observe(record)

    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        site = Site(simulator, stack, image, SiteControls(stack, image), records)
        await site.wait_for_value("inv-1.W", lambda v: v is not None)
        yield site


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def until() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(until(), timeout)


async def start(service: ProtocolService, timeout: float = 30.0) -> asyncio.Task[None]:
    """Run a protocol service in the background until it listens."""
    task = asyncio.create_task(service.run())
    await wait_until(lambda: service.status.state in ("listening", "connected") or task.done(), timeout)
    if task.done():
        task.result()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
