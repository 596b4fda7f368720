"""SunSpec over Modbus RTU: the simulator on one end of a socat pty pair, the stack on the other."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gridfleet_agent.field import FieldStack, PowerLimit
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from .fixtures import RecordingSink

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat is needed to link two serial ptys")


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    device_end, gateway_end = tmp_path / "device", tmp_path / "gateway"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={device_end}", f"pty,raw,echo=0,link={gateway_end}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (device_end.exists() and gateway_end.exists()):
            assert time.monotonic() < deadline, "socat did not create the pty pair"
            time.sleep(0.02)
        yield str(device_end), str(gateway_end)
    finally:
        socat.terminate()
        socat.wait(timeout=5)


async def test_an_rtu_device_is_discovered_polled_and_controlled(
    serial_pair: tuple[str, str], sink: RecordingSink
) -> None:
    device_end, gateway_end = serial_pair
    config = {
        "devices": [
            {
                "id": "inv-rtu",
                "protocol": "sunspec-rtu",
                "serial_port": gateway_end,
                "unit_id": 3,
                "baudrate": 19200,
                "poll_interval": 0.05,
                "timeout": 0.5,
            },
        ]
    }
    async with SunSpecSimulator(serial_port=device_end, baudrate=19200, unit_id=3) as sim:
        sim.set(103, "W", 2750)
        async with FieldStack(config, sink) as stack:
            inventory = await sink.wait_for("inventory")
            await sink.wait_for_points(W=2750)
            result = await stack.apply_setpoint("inv-rtu", PowerLimit(80.0), source="test")

    assert inventory["payload"]["field_devices"][0]["address"] == f"{gateway_end}/3"
    assert result.readback["WMaxLimPct"] == 80.0 and sim.get(704, "WMaxLimPct") == 80.0
