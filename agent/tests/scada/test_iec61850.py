"""The gateway as an IEC 61850 client reading an IED: libiec61850's own server (pyiec61850-ng) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gridfleet_agent.scada.config import ProtocolConfigError, ProtocolsConfig
from gridfleet_agent.scada.iec61850 import Iec61850DeviceConfig, Iec61850FieldDevice
from gridfleet_agent.scada.status import Supervisor
from pyiec61850.server import IedServer, ServerConfig

from .conftest import free_port, stop, wait_until

# A revenue meter's data model in libiec61850's configuration-file format (what its genconfig
# tool makes from an SCL file): IED "meter", logical device LD0, MMXU1 with TotW and Hz, and a
# circuit breaker position.
MODEL = """MODEL(meter){
LD(LD0){
LN(LLN0){
DO(Mod 0){
DA(stVal 0 12 0 1 0)=1;
DA(q 0 23 0 2 0);
DA(t 0 22 0 0 0);
DA(ctlModel 0 12 4 0 0)=0;
}
}
LN(MMXU1){
DO(TotW 0){
DA(mag 0 27 1 1 0){
DA(f 0 10 1 1 0);
}
DA(q 0 23 1 2 0);
DA(t 0 22 1 0 0);
}
DO(Hz 0){
DA(mag 0 27 1 1 0){
DA(f 0 10 1 1 0);
}
DA(q 0 23 1 2 0);
DA(t 0 22 1 0 0);
}
}
}
}
"""
POINTS = {"W": "meterLD0/MMXU1.TotW.mag.f", "Hz": "meterLD0/MMXU1.Hz.mag.f[MX]"}


class Ied:
    def __init__(self, directory: Path, port: int) -> None:
        (directory / "meter.cfg").write_text(MODEL)
        self.port = port
        self.server = IedServer(str(directory / "meter.cfg"), ServerConfig(port=port))

    def start(self) -> None:
        self.server.start(self.port)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def ied(tmp_path: Path) -> Iterator[Ied]:
    server = Ied(tmp_path, free_port())
    server.start()
    server.server.update_float("meterLD0/MMXU1.TotW.mag.f", -2500.5)
    server.server.update_float("meterLD0/MMXU1.Hz.mag.f", 59.98)
    yield server
    server.stop()


def device(port: int, **overrides: Any) -> Iec61850DeviceConfig:
    values: dict[str, Any] = {
        "id": "meter-1",
        "host": "127.0.0.1",
        "port": port,
        "poll_interval": 0.1,
        "timeout": 1.0,
        "comm_loss_after": 0.3,
        "points": POINTS,
        **overrides,
    }
    return Iec61850DeviceConfig(**values)


def merged(records: list[dict[str, Any]]) -> dict[str, Any]:
    points: dict[str, Any] = {}
    for record in records:
        points.update(record["payload"]["points"])
    return points


async def test_polled_values_become_telemetry_of_the_device(ied: Ied) -> None:
    records: list[dict[str, Any]] = []
    service = Iec61850FieldDevice(device(ied.port), emit=records.append)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: bool(records))
        assert records[0]["payload"]["device"] == "meter-1"
        assert merged(records)["W"] == -2500.5
        assert merged(records)["Hz"] == pytest.approx(59.98)
        ied.server.update_float("meterLD0/MMXU1.TotW.mag.f", 1200.0)
        await wait_until(lambda: merged(records)["W"] == 1200.0)
        assert service.status.state == "connected"
        assert service.inventory_entry()["protocol"] == "iec61850"
    finally:
        await stop(task)


async def test_a_reference_the_ied_does_not_have_is_named_and_the_others_still_arrive(ied: Ied) -> None:
    records: list[dict[str, Any]] = []
    points = {**POINTS, "VAr": "meterLD0/MMXU1.TotVAr.mag.f"}
    service = Iec61850FieldDevice(device(ied.port, points=points), emit=records.append)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.status.errors >= 1)
        assert "VAr (meterLD0/MMXU1.TotVAr.mag.f)" in service.status.last_error
        await wait_until(lambda: "W" in merged(records))
        assert "VAr" not in merged(records)
    finally:
        await stop(task)


async def test_losing_the_ied_raises_field_comms_lost_and_clears_it_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    ied = Ied(tmp_path, port)
    ied.start()
    records: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    service = Iec61850FieldDevice(device(port), emit=records.append)
    supervisor = Supervisor([service], report=lambda kind, payload: alarms.append(payload), check_interval=0.05)
    await supervisor.start()
    try:
        await wait_until(lambda: service.status.state == "connected")
        ied.stop()
        await wait_until(lambda: any(a["state"] == "raised" for a in alarms), timeout=15)
        assert (alarms[-1]["code"], alarms[-1]["device"]) == ("field.comms_lost", "meter-1")
        ied = Ied(tmp_path, port)
        ied.start()
        await wait_until(lambda: alarms[-1]["state"] == "cleared", timeout=15)
    finally:
        await supervisor.stop()
        ied.stop()


def test_references_are_checked_when_the_configuration_arrives() -> None:
    with pytest.raises(ProtocolConfigError) as refused:
        ProtocolsConfig.from_config(
            {"scada": {"iec61850": [{"id": "relay-1", "host": "h", "points": {"pos": "relayLD0/XCBR1.Pos.stVal[XX]"}}]}}
        )
    assert refused.value.problems == [
        "scada.iec61850[0].points.pos: unknown functional constraint in 'relayLD0/XCBR1.Pos.stVal[XX]' "
        "(one of ST, MX, SP, SV, CF, DC, SG, SE, SR, OR, BL, EX, CO)"
    ]
