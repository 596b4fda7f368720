"""Device templates: declarative register maps for non-SunSpec devices, checked with line and
field, and template devices polled and controlled over Modbus TCP against a pymodbus server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gridfleet_agent.field import Connection, ControlRejected, FieldConfigError, FieldStack, PointValue, PowerLimit
from gridfleet_agent.field.templates import TemplateError, parse_template, parse_templates, shipped_templates
from gridfleet_agent_simulators.sunspec import TemplateSimulator

from .fixtures import RecordingSink


def shipped(name: str) -> Any:
    return parse_template(name, shipped_templates()[name])


def template_device(sim: TemplateSimulator, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "dev-1",
        "protocol": "modbus-tcp",
        "template": sim.template.name,
        "host": sim.host,
        "port": sim.port,
        "unit_id": sim.unit_id,
        "poll_interval": 0.05,
        "timeout": 1.0,
        "debounce_polls": 1,
        **overrides,
    }


def test_every_shipped_template_is_valid() -> None:
    templates, problems = parse_templates({})
    assert problems == []
    assert {name: t.kind for name, t in templates.items()} == {
        "eastron-sdm630": "meter",
        "generic-inverter-modbus": "inverter",
        "generic-io-module": "io_module",
        "generic-weather-station": "weather_station",
    }


BROKEN = """\
template: my-meter
kind: meter
points:
  - {name: W, register: 52, table: input, type: float23}
  - {name: W, register: 70000}
  - name: Hz
    register: 70
    scale: 0
alarms:
  - register: 3
    bits:
      17: {code: m.x}
      2: {code: m.y, severity: fatal}
setpoints:
  - {name: Lim, register: 9, table: input, role: curtail}
colour: red
"""


def test_a_broken_template_names_the_line_and_field_of_every_mistake() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template("my-meter", BROKEN)

    assert caught.value.problems == [
        "line 16, colour: unknown key (known: alarms, kind, make, model, points, setpoints, template, word_order)",
        "line 4, points[0].type: must be one of int16, uint16, int32, uint32, float32, int64, uint64, float64, bool "
        "(got 'float23')",
        "line 5, points[1].register: required, an address 0..65535 (got 70000)",
        "line 8, points[2].scale: must not be 0",
        "line 12, alarms[0].bits.17: the key is a bit number 0..15",
        "line 13, alarms[0].bits.2.severity: one of critical, major, minor, warning, indeterminate",
        "line 15, setpoints[0].role: one of power_limit, connection (got 'curtail')",
        "line 15, setpoints[0].table: must be one of holding, coil (got 'input')",
    ]


def test_yaml_that_does_not_parse_names_its_line() -> None:
    with pytest.raises(TemplateError, match=r"line 4, not valid YAML"):
        parse_template("x", "template: x\nkind: meter\npoints: [ {name: W\n")


def test_a_template_in_the_configuration_is_checked_with_the_devices() -> None:
    with pytest.raises(FieldConfigError) as caught:
        FieldStack(
            {
                "templates": {"my-meter": BROKEN},
                "devices": [
                    {"id": "m1", "protocol": "modbus-tcp", "host": "127.0.0.1", "template": "my-meter"},
                    {"id": "m2", "protocol": "sunspec-tcp", "host": "127.0.0.1", "template": "eastron-sdm630"},
                    {"id": "m3", "protocol": "modbus-tcp", "host": "127.0.0.1", "template": "nope"},
                ],
            },
            RecordingSink(),
        )

    problems = caught.value.problems
    assert problems[0] == (
        "templates.my-meter: line 16, colour: unknown key (known: alarms, kind, make, model, points, "
        "setpoints, template, word_order)"
    )
    assert not any(p.startswith("devices[0]") for p in problems)  # its template's problems are reported once
    assert any(p.startswith("devices[2].template: required for modbus-tcp, one of eastron-sdm630, ") for p in problems)
    assert "devices[1].template: only for modbus-tcp/-rtu (SunSpec devices describe themselves)" in problems


async def test_a_template_meter_reports_its_readings_and_identity() -> None:
    sink = RecordingSink()
    values = {"W": -3250.5, "Hz": 49.98, "PhVphA": 231.2, "TotWhImp": 1234567.0, "PF": 0.97}
    async with TemplateSimulator(shipped("eastron-sdm630"), values=values) as meter:
        device = template_device(meter, id="mtr-2", serial="SDM-0042")
        async with FieldStack({"devices": [device]}, sink) as stack:
            inventory = await sink.wait_for("inventory")
            record = await sink.wait_for("telemetry", device="mtr-2")

    assert inventory["payload"]["field_devices"] == [
        {
            "key": "mtr-2",
            "kind": "meter",
            "protocol": "modbus-tcp",
            "address": f"127.0.0.1:{meter.port}/1",
            "make": "Eastron",
            "model": "SDM630",
            "serial": "SDM-0042",
        }
    ]
    assert stack.field_devices() == inventory["payload"]["field_devices"]
    points = record["payload"]["points"]
    assert (points["W"], points["Hz"], points["PhVphA"], points["PF"]) == (-3250.5, 49.98, 231.2, 0.97)
    assert points["TotWhImp"] == 1234567.0  # kWh in the meter's register, Wh in telemetry (scale 1000)
    assert meter.tables["input"][72:74] == [0x449A, 0x5225]  # 1234.567 as float32, high word first


async def test_template_alarm_bits_raise_the_templates_codes() -> None:
    sink = RecordingSink()
    async with TemplateSimulator(shipped("generic-weather-station"), values={"GHI": 870, "TmpAmb": 21.5}) as station:
        async with FieldStack({"devices": [template_device(station)]}, sink):
            record = await sink.wait_for("telemetry")
            station.set_alarm_bit(0, 1)
            station.set_alarm_bit(0, 9)
            named = await sink.wait_for("alarm", code="weather.heater_fault", state="raised")
            unnamed = await sink.wait_for(
                "alarm", state="raised", code="template.generic-weather-station.holding_10.bit_9"
            )

    assert record["payload"]["points"]["GHI"] == 870 and record["payload"]["points"]["TmpAmb"] == 21.5
    assert named["payload"]["severity"] == "warning"
    assert named["payload"]["details"] == {"bit": 1, "points": ["holding:10"]}
    assert unnamed["payload"]["severity"] == "indeterminate"


async def test_setpoints_reach_a_template_inverter_through_the_one_path() -> None:
    sink = RecordingSink()
    async with TemplateSimulator(shipped("generic-inverter-modbus"), values={"WMaxLimPct": 100}) as inverter:
        async with FieldStack({"devices": [template_device(inverter, id="inv-2")]}, sink) as stack:
            limited = await stack.apply_setpoint("inv-2", PowerLimit(42.5), source="test")
            off = await stack.apply_setpoint("inv-2", Connection(False), source="test")
            with pytest.raises(ControlRejected, match=r"WMaxLimPct=120.0 outside 0..100"):
                await stack.apply_setpoint("inv-2", PointValue("WMaxLimPct", 120), source="test")
            with pytest.raises(ControlRejected, match="cannot be sent to a template device"):
                from gridfleet_agent.field import PowerFactor

                await stack.apply_setpoint("inv-2", PowerFactor(0.9), source="test")

    assert (limited.sunspec_model, limited.readback) == (None, {"WMaxLimPct": 42.5})
    assert inverter.get("WMaxLimPct") == 42.5 and inverter.get("Conn") == 0
    assert off.readback == {"Conn": 0}
    assert [e["payload"]["data"]["status"] for e in sink.of_kind("event")] == [
        "succeeded",
        "succeeded",
        "rejected",
        "rejected",
    ]


async def test_a_contactor_on_an_io_module_coil_is_switched_and_read_back() -> None:
    sink = RecordingSink()
    async with TemplateSimulator(shipped("generic-io-module")) as io:
        async with FieldStack({"devices": [template_device(io, id="io-1")]}, sink) as stack:
            closed = await stack.apply_setpoint("io-1", Connection(True), source="test")
            record = await sink.wait_for_points(DO1=1)

    assert closed.readback == {"DO1": 1} and io.tables["coil"][0] == 1
    assert record["payload"]["points"]["DI1"] == 0


def test_the_commissioning_cli_checks_a_configuration_and_its_templates(tmp_path: Any, capsys: Any) -> None:
    from gridfleet_agent.field.__main__ import main

    good = {
        "devices": [{"id": "m", "protocol": "modbus-rtu", "serial_port": "/dev/ttyS0", "template": "eastron-sdm630"}]
    }
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "bad.json").write_text(json.dumps({**good, "templates": {"eastron-sdm630": BROKEN}}))

    assert main([str(tmp_path / "good.json"), "--check"]) == 0
    assert "1 devices, templates used: eastron-sdm630" in capsys.readouterr().out
    assert main([str(tmp_path / "bad.json"), "--check"]) == 2
    err = capsys.readouterr().err
    assert "invalid field configuration: templates.eastron-sdm630: line 1, template: is 'my-meter'" in err
    assert "templates.eastron-sdm630: line 4, points[0].type" in err
