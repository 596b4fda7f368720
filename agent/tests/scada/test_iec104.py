"""The gateway as an IEC 60870-5-104 outstation, driven by a c104 client over loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import c104
import pytest
from gridfleet_agent.scada.iec104 import Iec104Config, Iec104Outstation

from .conftest import Site, free_port, start, stop, wait_until

CA = 1


@pytest.fixture
async def outstation(site: Site) -> AsyncIterator[Iec104Outstation]:
    service = Iec104Outstation(
        Iec104Config(host="127.0.0.1", port=free_port(), common_address=CA), site=site.image, controls=site.controls
    )
    task = await start(service)
    yield service
    await stop(task)


class Scada:
    """A c104 client (controlling station) with the points a test reads and commands."""

    def __init__(self, port: int) -> None:
        self.client = c104.Client()
        self.connection = self.client.add_connection(ip="127.0.0.1", port=port, init=c104.Init.NONE)
        self.station = self.connection.add_station(common_address=CA)
        self.points: dict[int, Any] = {}

    def point(self, ioa: int, kind: Any) -> Any:
        if ioa not in self.points:
            self.points[ioa] = self.station.add_point(io_address=ioa, type=kind)
        return self.points[ioa]

    async def command(self, ioa: int, kind: Any, value: float | bool) -> bool:
        point = self.point(ioa, kind)
        point.value = value
        return bool(await asyncio.to_thread(point.transmit, cause=c104.Cot.ACTIVATION))

    async def interrogate(self) -> None:
        # Not waiting for c104's own confirmation bookkeeping (it races with a fast answer on
        # loopback); the test waits for the values instead.
        await asyncio.to_thread(self.connection.interrogation, common_address=CA, wait_for_response=False)


@pytest.fixture
async def scada(outstation: Iec104Outstation) -> AsyncIterator[Scada]:
    scada = Scada(outstation.config.port)
    scada.point(3, c104.Type.M_ME_NC_1)  # site.limit_pct
    scada.point(4, c104.Type.M_SP_NA_1)  # site.limit_enabled
    scada.point(1001, c104.Type.M_ME_NC_1)  # inv-1.W
    scada.client.start()
    await wait_until(lambda: scada.connection.is_connected)
    assert await asyncio.to_thread(scada.connection.unmute)  # STARTDT: the outstation may now send
    await wait_until(lambda: outstation.status.state == "connected")
    yield scada
    await asyncio.to_thread(scada.client.stop)


async def test_general_interrogation_returns_the_site_points(
    site: Site, outstation: Iec104Outstation, scada: Scada
) -> None:
    site.simulator.update(103, {"W": 3210})
    await site.wait_for_value("inv-1.W", lambda v: v == 3210)
    await scada.interrogate()
    await wait_until(lambda: scada.points[1001].value == 3210.0)
    await wait_until(lambda: outstation.status.state == "connected")
    assert outstation.status.peer == "127.0.0.1"


async def test_setpoint_command_limits_the_inverter_and_the_read_back_comes_spontaneously(
    site: Site, outstation: Iec104Outstation, scada: Scada
) -> None:
    assert await scada.command(5001, c104.Type.C_SE_NC_1, 42.5)

    assert site.simulator.get(704, "WMaxLimPct") == 42.5  # the inverter's model 704 registers
    assert site.simulator.get(704, "WMaxLimPctEna") == 1
    await wait_until(lambda: scada.points[3].value == pytest.approx(42.5))
    await wait_until(lambda: scada.points[4].value is True)

    assert await scada.command(5002, c104.Type.C_SC_NA_1, False)  # limit off
    assert site.simulator.get(704, "WMaxLimPctEna") == 0
    await wait_until(lambda: scada.points[4].value is False)


async def test_out_of_range_setpoint_gets_a_negative_confirmation_and_changes_nothing(
    site: Site, outstation: Iec104Outstation, scada: Scada
) -> None:
    assert not await scada.command(5001, c104.Type.C_SE_NC_1, 150.0)
    assert not await scada.command(5001, c104.Type.C_SE_NC_1, float("nan"))
    assert not await scada.command(5002, c104.Type.C_SC_NA_1, True)  # no limit sent before
    assert "IOA 5002" in outstation.status.last_error
    # No such command point: the outstation answers UNKNOWN_IOA (c104's client sometimes reports a
    # fast negative answer as success on loopback, so the test reads the outstation's side).
    await scada.command(7777, c104.Type.C_SE_NC_1, 1.0)
    await wait_until(lambda: "7777" in outstation.status.last_error)
    assert site.simulator.get(704, "WMaxLimPctEna") == 0
    assert outstation.status.errors == 4


async def test_garbage_on_the_104_port_does_not_stop_the_outstation(
    site: Site, outstation: Iec104Outstation, scada: Scada
) -> None:
    with socket.create_connection(("127.0.0.1", outstation.config.port)) as raw:
        raw.sendall(b"\x68\x04\xff\xff\xff\xff" + b"\x00" * 64)
        await asyncio.sleep(0.3)
    assert await scada.command(5001, c104.Type.C_SE_NC_1, 80.0)
    assert site.simulator.get(704, "WMaxLimPct") == 80.0
