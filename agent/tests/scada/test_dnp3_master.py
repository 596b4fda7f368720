"""The gateway as a DNP3 master polling a field device: a dnp3py outstation on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dnp3.database import AnalogInputConfig, BinaryInputConfig, Database
from dnp3.database.point import EventClass
from dnp3.outstation import Outstation, OutstationConfig, OutstationTcpRunner
from gridfleet_agent.scada.dnp3_master import Dnp3DeviceConfig, Dnp3FieldDevice
from gridfleet_agent.scada.dnp3_outstation import UnsolicitedOutstationRunner
from gridfleet_agent.scada.status import Supervisor

from .conftest import free_port, stop, wait_until


class FieldOutstation:
    """A revenue meter speaking DNP3: two analogs and a breaker state, events in class 1."""

    def __init__(self, port: int, *, unsolicited: bool) -> None:
        self.database = Database()
        self.database.add_analog_input(0, AnalogInputConfig(event_class=EventClass.CLASS_1), value=-1500.0)
        self.database.add_analog_input(1, AnalogInputConfig(event_class=EventClass.CLASS_1), value=60.0)
        self.database.add_binary_input(0, BinaryInputConfig(event_class=EventClass.CLASS_1), value=True)
        outstation = Outstation(config=OutstationConfig(address=10, master_address=1), database=self.database)
        # dnp3py's own TCP runner answers polls; sending unsolicited responses is left to the caller
        # ("call generate_unsolicited periodically"), which the gateway's runner does.
        self.runner: OutstationTcpRunner = (
            UnsolicitedOutstationRunner(outstation, "127.0.0.1", port)
            if unsolicited
            else OutstationTcpRunner(outstation=outstation, host="127.0.0.1", port=port)
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())
        await wait_until(lambda: self.runner.is_running)

    async def stop(self) -> None:
        await self.runner.stop()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


def device_config(port: int, **overrides: Any) -> Dnp3DeviceConfig:
    values: dict[str, Any] = {
        "id": "meter-1",
        "host": "127.0.0.1",
        "port": port,
        "event_interval": 0.3,
        "integrity_interval": 60.0,
        "timeout": 2.0,
        "comm_loss_after": 0.5,
        "analog": {0: "W", 1: "Hz"},
        "binary": {0: "breaker_closed"},
        **overrides,
    }
    return Dnp3DeviceConfig(**values)


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return []


def points_seen(records: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for record in records:
        merged.update(record["payload"]["points"])
    return merged


@pytest.fixture
async def meter() -> AsyncIterator[FieldOutstation]:
    outstation = FieldOutstation(free_port(), unsolicited=True)
    await outstation.start()
    yield outstation
    await outstation.stop()


async def test_integrity_poll_reports_mapped_points_as_telemetry_of_the_device(
    meter: FieldOutstation, records: list[dict[str, Any]]
) -> None:
    device = Dnp3FieldDevice(device_config(meter.runner.port), emit=records.append)
    task = asyncio.create_task(device.run())
    try:
        await wait_until(lambda: device.status.state == "connected")
        first = records[0]
        assert first["kind"] == "telemetry" and first["payload"]["device"] == "meter-1"
        assert first["payload"]["points"] == {"W": -1500.0, "Hz": 60.0, "breaker_closed": 1}
        assert device.status.points == 3
        assert device.inventory_entry() == {
            "key": "meter-1",
            "kind": "meter",
            "protocol": "dnp3-tcp",
            "address": f"127.0.0.1:{meter.runner.port}/10",
        }
    finally:
        await stop(task)


async def test_changes_arrive_as_unsolicited_responses(meter: FieldOutstation, records: list[dict[str, Any]]) -> None:
    # Event polls far apart: only an unsolicited response can bring the change in time.
    device = Dnp3FieldDevice(device_config(meter.runner.port, event_interval=30.0), emit=records.append)
    task = asyncio.create_task(device.run())
    try:
        await wait_until(lambda: device.status.state == "connected")
        meter.database.update_analog_input(0, -2750.0)
        meter.database.update_binary_input(0, False)
        await wait_until(lambda: points_seen(records).get("W") == -2750.0)
        assert points_seen(records)["breaker_closed"] == 0
        assert device.unsolicited_received >= 1
    finally:
        await stop(task)


async def test_event_polls_bring_changes_when_the_outstation_sends_none_unsolicited(
    records: list[dict[str, Any]],
) -> None:
    plain = FieldOutstation(free_port(), unsolicited=False)
    await plain.start()
    device = Dnp3FieldDevice(device_config(plain.runner.port, unsolicited=False), emit=records.append)
    task = asyncio.create_task(device.run())
    try:
        await wait_until(lambda: device.status.state == "connected")
        plain.database.update_analog_input(1, 59.0)
        await wait_until(lambda: points_seen(records).get("Hz") == 59.0)
        assert device.unsolicited_received == 0
    finally:
        await stop(task)
        await plain.stop()


async def test_losing_the_outstation_raises_field_comms_lost_for_the_device_and_clears_it_on_return(
    records: list[dict[str, Any]],
) -> None:
    port = free_port()
    meter = FieldOutstation(port, unsolicited=True)
    await meter.start()
    device = Dnp3FieldDevice(device_config(port), emit=records.append)
    alarms: list[dict[str, Any]] = []
    supervisor = Supervisor([device], report=lambda kind, payload: alarms.append(payload), check_interval=0.05)
    await supervisor.start()
    try:
        await wait_until(lambda: device.status.state == "connected")
        await meter.stop()
        await wait_until(lambda: any(a["state"] == "raised" for a in alarms), timeout=10)
        raised = alarms[-1]
        assert (raised["code"], raised["device"], raised["source"]) == ("field.comms_lost", "meter-1", "device:meter-1")
        assert device.status.errors >= 1

        meter = FieldOutstation(port, unsolicited=True)
        await meter.start()
        await wait_until(lambda: alarms[-1]["state"] == "cleared", timeout=15)
    finally:
        await supervisor.stop()
        await meter.stop()


async def test_a_peer_answering_garbage_is_an_error_on_the_link_not_a_crash(records: list[dict[str, Any]]) -> None:
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x05\x64" + bytes(range(200)))
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    device = Dnp3FieldDevice(device_config(port, timeout=0.5), emit=records.append)
    task = asyncio.create_task(device.run())
    try:
        await wait_until(lambda: device.status.errors >= 1, timeout=10)
        assert "127.0.0.1" in device.status.last_error
        assert not task.done()  # it retries
        assert records == []
    finally:
        await stop(task)
        server.close()
