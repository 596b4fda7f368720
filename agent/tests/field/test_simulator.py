"""The SunSpec simulator, seen from a SunSpec client (pysunspec2) and from its CLI."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest
from gridfleet_agent_simulators.sunspec import (
    SimulatedSite,
    SimulatorError,
    SunSpecSimulator,
    console_command,
    sun_fraction,
)
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from .fixtures import RecordingSink, simulators_env


def scan(port: int, unit_id: int = 1) -> SunSpecModbusClientDeviceTCP:
    device = SunSpecModbusClientDeviceTCP(slave_id=unit_id, ipaddr="127.0.0.1", ipport=port, timeout=1)
    device.scan()
    device.close()
    return device


async def test_pysunspec2_finds_the_suns_marker_at_40000_and_every_model_in_order(simulator: SunSpecSimulator) -> None:
    device = await asyncio.to_thread(scan, simulator.port)

    assert device.base_addr == 40000
    assert [m.model_id for m in device.model_list] == [1, 103, 123, 701, 703, 704, 705, 711]
    assert simulator.register(40000) == 0x5375 and simulator.register(40001) == 0x6E53  # "SunS"
    assert device.models[103][0].model_addr == simulator.model_address(103)


async def test_values_set_in_engineering_units_read_back_scaled_by_a_client(simulator: SunSpecSimulator) -> None:
    simulator.update(103, {"W": 4321, "Hz": 59.98, "PhVphA": 241.3, "TmpCab": -4.5, "WH": 2_000_001})
    simulator.set(1, "SN", "ABC-123")

    device = await asyncio.to_thread(scan, simulator.port)
    inverter = device.models[103][0]

    assert inverter.W.cvalue == 4321
    assert inverter.Hz.cvalue == 59.98
    assert inverter.PhVphA.cvalue == 241.3
    assert inverter.TmpCab.cvalue == -4.5
    assert inverter.WH.cvalue == 2_000_001
    assert inverter.TmpTrns.cvalue is None  # never set: reads as 'not implemented'
    assert device.models[1][0].SN.value == "ABC-123"


async def test_client_writes_land_in_the_map_and_out_of_range_writes_are_refused() -> None:
    async with SunSpecSimulator(power_limit_range=(10.0, 100.0)) as sim:

        def write(percent: float) -> None:
            device = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=sim.port, timeout=1)
            device.scan()
            control = device.models[704][0]
            control.WMaxLimPct.cvalue = percent
            control.write()
            device.close()

        await asyncio.to_thread(write, 42.5)
        assert sim.get(704, "WMaxLimPct") == 42.5
        with pytest.raises(Exception, match="Modbus exception"):
            await asyncio.to_thread(write, 5.0)
        assert sim.get(704, "WMaxLimPct") == 42.5


def test_unknown_models_and_points_are_refused_with_a_clear_error() -> None:
    sim = SunSpecSimulator(models=(1, 101))
    with pytest.raises(SimulatorError, match="model 704 is not in this map"):
        sim.set(704, "WMaxLimPct", 50)
    with pytest.raises(SimulatorError, match="no point 'Watts'"):
        sim.set(101, "Watts", 50)
    with pytest.raises(SimulatorError, match="starts with model 1"):
        SunSpecSimulator(models=(103,))


def test_cli_serves_a_device_that_pysunspec2_can_scan() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridfleet_agent_simulators.sunspec",
            "--port",
            "0",
            "--models",
            "1,101,701",
            "--serial",
            "CLI-7",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=simulators_env(),
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"on 127\.0\.0\.1:(\d+) unit 1 models \[1, 101, 701\]", banner)
        assert match, banner
        device = scan(int(match.group(1)))
        assert [m.model_id for m in device.model_list] == [1, 101, 701]
        assert device.models[1][0].SN.value == "CLI-7"
    finally:
        process.terminate()
        process.wait(timeout=5)


async def test_a_simulated_site_is_the_real_stack_on_a_simulated_plant(sink: RecordingSink) -> None:
    site = SimulatedSite(sink, name="GW-1", poll_interval=0.05, day_seconds=40.0, load_w=2500)
    await site.start()
    try:
        await sink.wait_for("inventory")
        outcome = await site.execute("set_power_limit", {"device": "GW-1-INV1", "limit_pct": 0})
        mark = sink.records[-1]
        await sink.wait_for_points(W=0, after=mark)
        site.update_meter()  # the plant loop does this every second
        meter = await sink.wait_for("telemetry", device="GW-1-MTR1", after=mark)
        while meter["payload"]["points"]["W"] != 2500:  # all of the load now comes from the grid
            meter = await sink.wait_for("telemetry", device="GW-1-MTR1", after=meter)
        battery = await sink.wait_for("telemetry", device="GW-1-BAT1")
    finally:
        await site.stop()

    assert outcome.status == "succeeded"
    assert {d["key"]: (d["kind"], d["serial"]) for d in site.field_devices()} == {
        "GW-1-INV1": ("inverter", "GW-1-INV1"),
        "GW-1-MTR1": ("meter", "GW-1-MTR1"),
        "GW-1-BAT1": ("battery", "GW-1-BAT1"),
    }
    assert battery["payload"]["points"]["SoC"] == 60 and battery["payload"]["points"]["WHRtg"] == 13500


def test_the_sun_rises_at_six_and_sets_at_eighteen_utc() -> None:
    day = 86400.0
    assert sun_fraction(6 * 3600, day) == 0.0
    assert sun_fraction(12 * 3600, day) == 1.0
    assert sun_fraction(22 * 3600, day) == 0.0


async def test_read_only_points_cannot_be_written(simulator: SunSpecSimulator) -> None:
    def write_watts() -> None:
        device = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=simulator.port, timeout=1)
        device.scan()
        inverter = device.models[103][0]
        inverter.W.cvalue = 1
        try:
            inverter.write()
        finally:
            device.close()

    with pytest.raises(Exception, match="Modbus exception: 2"):
        await asyncio.to_thread(write_watts)
    assert simulator.get(103, "W") == 5000


def test_console_commands_inject_values_and_faults() -> None:
    sim = SunSpecSimulator()
    assert console_command(sim, "set 103 W 4200") == "103.W = 4200"
    assert console_command(sim, "set 1 SN GW-9") == "1.SN = GW-9"
    assert console_command(sim, "event 7 on") == "event bit 7 on"
    assert sim.get(103, "Evt1") == 1 << 7 and sim.get(701, "Alrm") == 1 << 7
    assert console_command(sim, "sun 3000") == "available power 3000.0 W"
    assert sim.get(103, "W") == 3000
    with pytest.raises(SimulatorError, match="not understood: 'event 7 maybe'"):
        console_command(sim, "event 7 maybe")


async def test_cli_console_drives_a_running_device() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridfleet_agent_simulators.sunspec",
        "--port",
        "0",
        "--console",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=simulators_env(),
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        port = int(re.search(r":(\d+) unit", banner).group(1))  # type: ignore[union-attr]
        process.stdin.write(b"event 0 on\n")
        await process.stdin.drain()
        assert (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip() == "event bit 0 on"
        device = await asyncio.to_thread(scan, port)
        assert device.models[103][0].Evt1.value == 1
    finally:
        process.terminate()
        await process.wait()
