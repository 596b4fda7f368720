"""The gateway as a DNP3 outstation, driven by dnp3py's own master over loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from dnp3.application.fragment import ResponseFragment
from dnp3.core.enums import CommandStatus, ControlCode, OperationType
from dnp3.core.flags import IIN
from dnp3.master import CommandBuilder, DefaultSOEHandler, Master, MasterConfig, MasterTcpRunner
from dnp3.master.handler import ResponseInfo
from gridfleet_agent.scada.dnp3_outstation import Dnp3Outstation, Dnp3OutstationConfig

from .conftest import Site, free_port, start, stop, wait_until

OUTSTATION, MASTER = 10, 1


class RecordingMaster(Master):
    """dnp3py's master, keeping the object blocks of each response: its SOE handler has no
    callback for command echoes, and the status byte of a control is what we assert on."""

    last_objects: tuple[Any, ...] = ()

    def _process_response_fragment(self, response: ResponseFragment) -> ResponseInfo:
        if not response.header.control.uns:
            self.last_objects = tuple(response.objects)
        return super()._process_response_fragment(response)


def command_status(master: RecordingMaster) -> CommandStatus:
    """The status octet ends each echoed control object (g12v1, g41vX)."""
    (block,) = master.last_objects
    return CommandStatus(block.data[-1])


@pytest.fixture
async def outstation(site: Site) -> Any:
    service = Dnp3Outstation(
        Dnp3OutstationConfig(host="127.0.0.1", port=free_port(), address=OUTSTATION, master_address=MASTER),
        site=site.image,
        controls=site.controls,
    )
    task = await start(service)
    yield service
    await stop(task)


async def connect(service: Dnp3Outstation) -> tuple[RecordingMaster, DefaultSOEHandler, MasterTcpRunner]:
    handler = DefaultSOEHandler()
    master = RecordingMaster(config=MasterConfig(address=MASTER, outstation_address=OUTSTATION), handler=handler)
    runner = MasterTcpRunner(master=master, host="127.0.0.1", port=service.config.port, response_timeout=10.0)
    await runner.open()
    return master, handler, runner


async def operate(runner: MasterTcpRunner, master: RecordingMaster, builder: CommandBuilder) -> CommandStatus:
    await runner.request(master.build_direct_operate(builder.build_direct_operate()))
    return command_status(master)


async def test_integrity_poll_serves_the_site_at_mesa_indices(site: Site, outstation: Dnp3Outstation) -> None:
    site.simulator.update(103, {"W": 4321, "VAr": -250})
    await site.wait_for_value("inv-1.W", lambda v: v == 4321)
    _master, handler, runner = await connect(outstation)
    try:
        await runner.integrity_poll()
    finally:
        await runner.close()

    assert handler.analog_inputs[15069].value == 4321  # Inverter 1 MMXU.TotW
    assert handler.analog_inputs[15070].value == -250  # MMXU.TotVAr
    assert handler.analog_inputs[900].value == 4321  # site total
    assert handler.binary_inputs[15013].value is False  # inverter answers: no communication error
    assert outstation.status.state == "listening"  # the master has gone again


async def test_power_limit_from_scada_reaches_the_inverter_registers_and_is_read_back(
    site: Site, outstation: Dnp3Outstation
) -> None:
    master, handler, runner = await connect(outstation)
    try:
        await runner.integrity_poll()
        await runner.enable_unsolicited()
        assert await operate(runner, master, CommandBuilder().add_analog(87, 600)) == CommandStatus.SUCCESS
        assert site.simulator.get(704, "WMaxLimPctEna") == 0  # AO87 alone only sets the value (MESA)
        latch_on = ControlCode.from_fields(OperationType.LATCH_ON)
        assert await operate(runner, master, CommandBuilder().add_crob(17, latch_on)) == CommandStatus.SUCCESS
        await wait_until(lambda: outstation.status.state == "connected")

        # On the inverter: model 704 holds the limit (read from its Modbus registers).
        assert site.simulator.get(704, "WMaxLimPct") == 60.0
        assert site.simulator.get(704, "WMaxLimPctEna") == 1

        # Toward SCADA: the read-back arrives as unsolicited events (AI148, BI69).
        async def events_arrived() -> None:
            while handler.analog_inputs.get(148) is None or handler.analog_inputs[148].value != 600:
                await runner.listen_unsolicited(timeout=0.5)

        await asyncio.wait_for(events_arrived(), 5)
        assert handler.binary_inputs[69].value is True

        latch_off = ControlCode.from_fields(OperationType.LATCH_OFF)
        assert await operate(runner, master, CommandBuilder().add_crob(17, latch_off)) == CommandStatus.SUCCESS
        assert site.simulator.get(704, "WMaxLimPctEna") == 0
    finally:
        await runner.close()


async def test_out_of_range_and_unknown_controls_are_refused_without_touching_the_inverter(
    site: Site, outstation: Dnp3Outstation
) -> None:
    master, _handler, runner = await connect(outstation)
    try:
        assert await operate(runner, master, CommandBuilder().add_analog(87, 2000)) == CommandStatus.OUT_OF_RANGE
        assert await operate(runner, master, CommandBuilder().add_analog(88, 10)) == CommandStatus.NOT_SUPPORTED
        latch_on = ControlCode.from_fields(OperationType.LATCH_ON)
        # The limit mode cannot be enabled before a limit was written.
        assert await operate(runner, master, CommandBuilder().add_crob(17, latch_on)) == CommandStatus.BLOCKED
    finally:
        await runner.close()
    assert site.simulator.get(704, "WMaxLimPctEna") == 0
    assert outstation.status.errors == 3
    assert "BLOCKED" in outstation.status.last_error


async def test_garbage_is_dropped_malformed_requests_get_iin_errors_and_the_next_master_is_served(
    site: Site, outstation: Dnp3Outstation
) -> None:
    with socket.create_connection(("127.0.0.1", outstation.config.port)) as raw:
        # A valid-looking start (0x05 0x64) with a broken header CRC, then noise: the data link
        # layer discards it, as IEEE 1815 requires, and the connection stays usable.
        raw.sendall(b"\x05\x64\x05\xc0\x0a\x00\x01\x00\xff\xff" + bytes(range(256)))
        await asyncio.sleep(0.3)
    master, handler, runner = await connect(outstation)
    try:
        (unknown,) = await runner.request(master.build_range_poll(group=99, variation=1, start=0, stop=1))
        assert unknown.iin & IIN.OBJECT_UNKNOWN  # the master is told what it got wrong
        await runner.integrity_poll()
    finally:
        await runner.close()
    assert 15069 in handler.analog_inputs
    await wait_until(lambda: outstation.status.state == "listening")
