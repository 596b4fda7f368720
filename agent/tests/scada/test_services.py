"""The protocol services together: configuration from the signed config, isolation, status reporting."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import c104
import pytest
from dnp3.core.enums import ControlCode, OperationType
from dnp3.master import CommandBuilder, DefaultSOEHandler, Master, MasterConfig, MasterTcpRunner
from gridfleet_agent.scada.config import ProtocolConfigError, ProtocolsConfig
from gridfleet_agent.scada.services import ProtocolServices, load_signed_config

from .conftest import Site, free_port, wait_until


def test_an_empty_configuration_starts_nothing() -> None:
    assert ProtocolsConfig.from_config({}).empty
    assert ProtocolsConfig.from_config({"scada": {"iec104": {"enabled": False}}}).empty


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(ProtocolConfigError) as refused:
        ProtocolsConfig.from_config(
            {
                "scada": {
                    "dnp3_outstation": {"port": 70000, "adress": 10},
                    "iec104": {"port": 2404, "control_timeout": -1},
                    "opcua": {"port": 2404, "trusted_ca_pem": ["not a certificate"]},
                    "dnp3_master": [{"id": "rtu 1", "analog": {"x": "W"}}],
                },
                "cloud": {"brokers": [{"name": "aws", "platform": "aws", "host": "h", "ca_pem": ""}]},
            }
        )
    problems = refused.value.problems
    assert "scada.dnp3_outstation.port: an integer 1..65535 (got 70000)" in problems
    assert any(p.startswith("scada.dnp3_outstation.adress: unknown key") for p in problems)
    assert "scada.iec104.control_timeout: a positive number (got -1)" in problems
    assert "scada.opcua.trusted_ca_pem: a non-empty list of PEM CA certificates" in problems
    assert "scada.iec104.port: 2404 is used by another protocol" in problems
    assert "scada.dnp3_master[0].analog.x: map a point index (digits) to a point name" in problems
    assert "scada.dnp3_master[0].id: required, 1-64 letters, digits, '.', '_' or '-'" in problems
    assert "scada.dnp3_master[0].host: required, the outstation's address" in problems
    assert any(p.startswith("cloud.brokers[0].platform: one of aws-iot-core") for p in problems)
    assert any(p.startswith("cloud.brokers[0].ca_pem: required") for p in problems)


def test_the_signed_config_file_is_read_and_a_broken_one_refused(tmp_path: Path) -> None:
    assert load_signed_config(tmp_path / "missing.json") == {}
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ProtocolConfigError):
        load_signed_config(tmp_path / "config.json")


async def test_one_protocol_failing_does_not_stop_the_others_and_every_link_is_reported(
    site: Site, tmp_path: Path
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy_port = taken.getsockname()[1]  # the 104 server cannot listen there
    config = ProtocolsConfig.from_config(
        {"scada": {"dnp3_outstation": {"port": free_port()}, "iec104": {"port": busy_port}}}
    )
    reports: list[tuple[str, dict[str, Any]]] = []
    services = ProtocolServices(
        config,
        field=site.stack,
        state_dir=tmp_path,
        gateway="GW-1",
        emit=lambda record: None,
        report=lambda kind, payload: reports.append((kind, payload)),
    )
    for record in site.records:
        services.observe(record)
    await services.start()
    try:
        statuses = {s["name"]: s for s in services.statuses()}
        await wait_until(lambda: {s["name"]: s for s in services.statuses()}["iec104"]["errors"] >= 1, timeout=10)
        assert {s["name"]: s for s in services.statuses()}["iec104"]["state"] in ("failed", "starting")
        # The DNP3 outstation serves and controls the inverter all the same.
        await wait_until(lambda: {s["name"]: s for s in services.statuses()}["dnp3-outstation"]["state"] == "listening")
        port = config.dnp3_outstation.port  # type: ignore[union-attr]
        master = Master(config=MasterConfig(address=1, outstation_address=10), handler=DefaultSOEHandler())
        runner = MasterTcpRunner(master=master, host="127.0.0.1", port=port)
        await runner.open()
        try:
            await runner.request(
                master.build_direct_operate(CommandBuilder().add_analog(87, 500).build_direct_operate())
            )
            on = ControlCode.from_fields(OperationType.LATCH_ON)
            await runner.request(master.build_direct_operate(CommandBuilder().add_crob(17, on).build_direct_operate()))
        finally:
            await runner.close()
        assert site.simulator.get(704, "WMaxLimPct") == 50.0
        assert set(statuses) == {"dnp3-outstation", "iec104"}
        assert json.dumps(services.statuses())  # goes into the inventory attributes as is
    finally:
        await services.stop()
        taken.close()
    assert not [p for kind, p in reports if kind == "alarm" and p["state"] == "raised"]  # comm_loss_after not reached


async def test_a_link_down_longer_than_its_limit_raises_protocol_comms_lost(site: Site, tmp_path: Path) -> None:
    config = ProtocolsConfig.from_config({"scada": {"iec104": {"port": free_port(), "comm_loss_after": 0.2}}})
    reports: list[tuple[str, dict[str, Any]]] = []
    services = ProtocolServices(
        config,
        field=site.stack,
        state_dir=tmp_path,
        gateway="GW-1",
        emit=lambda record: None,
        report=lambda kind, payload: reports.append((kind, payload)),
    )
    services.supervisor.check_interval = 0.05
    await services.start()
    try:
        await wait_until(lambda: bool(reports), timeout=5)
        kind, alarm = reports[0]
        assert kind == "alarm"
        assert (alarm["source"], alarm["code"], alarm["state"]) == ("protocol:iec104", "protocol.comms_lost", "raised")
        client = c104.Client()
        connection = client.add_connection(ip="127.0.0.1", port=config.iec104.port, init=c104.Init.NONE)  # type: ignore[union-attr]
        client.start()
        await wait_until(lambda: connection.is_connected)
        await asyncio.to_thread(connection.unmute)
        await wait_until(lambda: reports[-1][1]["state"] == "cleared", timeout=5)
        await asyncio.to_thread(client.stop)
    finally:
        await services.stop()
