"""SunSpec beyond the inverter, against simulated devices on loopback: meters (201-204),
storage (713/714/802), the DER settings and curve models with their repeating groups, and
vendor event bits named through the per-make table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gridfleet_agent.field import FieldConfigError, FieldStack
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from .fixtures import RecordingSink

DeviceEntry = Callable[..., dict[str, Any]]


async def test_a_meter_reports_power_energy_and_phases_with_its_scale_factors(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with SunSpecSimulator.preset("meter") as meter:
        meter.update(203, {"W_SF": 1, "W": -4520, "PF_SF": -1, "PF": -97.3, "TotWhExp": 351234, "PhVphB": 231.4})
        async with FieldStack({"devices": [device_entry(meter, id="mtr-1", kind="meter")]}, sink):
            record = await sink.wait_for_points(W=-4520)

    points = record["payload"]["points"]
    assert points["PF"] == -0.973  # percent in the model, a ratio in telemetry
    assert points["TotWhExp"] == 351234 and points["TotWhImp"] == 910000
    assert points["PhVphB"] == 231.4 and points["V"] == 230.0 and points["Hz"] == 50.0
    assert "SoC" not in points and "St" not in points


async def test_meter_events_raise_their_own_alarm_codes(sink: RecordingSink, device_entry: DeviceEntry) -> None:
    async with SunSpecSimulator.preset("meter") as meter:
        async with FieldStack({"devices": [device_entry(meter, id="mtr-1", kind="meter")]}, sink):
            await sink.wait_for("telemetry")
            meter.raise_event(2)  # M_EVENT_Power_Failure
            alarm = await sink.wait_for("alarm", code="sunspec.meter.power_failure", state="raised")

    assert alarm["payload"]["severity"] == "major"
    assert alarm["payload"]["details"] == {"bit": 2, "points": ["203.Evt"]}


async def test_a_battery_reports_state_of_charge_and_its_alarms(sink: RecordingSink, device_entry: DeviceEntry) -> None:
    async with SunSpecSimulator.preset("battery") as battery:
        battery.update(802, {"SoC": 42, "W": -2500, "V": 52.3, "ChaSt": 4})
        battery.update(713, {"SoC": 42, "WHAvail": 5670})
        async with FieldStack({"devices": [device_entry(battery, id="bat-1", kind="battery")]}, sink):
            record = await sink.wait_for_points(SoC=42)
            battery.raise_event(1)  # 802 OVER_TEMP_ALARM
            alarm = await sink.wait_for("alarm", code="sunspec.battery.over_temp_alarm", state="raised")

    points = record["payload"]["points"]
    assert (points["WHRtg"], points["WHAvail"], points["SoH"], points["StorSta"]) == (13500, 5670, 98, 0)
    assert (points["DCW"], points["DCV"], points["ChaSt"], points["BatSt"]) == (0, 52.3, 4, 3)  # 714 DCW first
    assert points["DCWhAbs"] == 1350000
    assert alarm["payload"]["severity"] == "critical"


async def test_settings_and_curve_models_are_read_with_their_repeating_groups(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    entry = device_entry(simulator, models=[103, 705, 711], points=["705.Crv[1].Pt[2].V"])
    simulator.update(705, {"Ena": 1})
    async with FieldStack({"devices": [entry]}, sink) as stack:
        from gridfleet_agent.field import Curve

        await stack.apply_setpoint(
            "inv-1", Curve(705, {"Pt": [{"V": 95.5, "Var": 20}, {"V": 104.5, "Var": -20}]}), source="test"
        )
        record = await sink.wait_for_points(**{"705.Crv[1].Pt[2].V": 104.5})

    points = record["payload"]["points"]
    assert points["705.Ena"] == 1 and points["705.NCrv"] == 3 and points["705.NPt"] == 4
    assert points["705.Crv[1].ActPt"] == 2 and points["705.Crv[1].ReadOnly"] == 1
    assert points["705.Crv[1].Pt[1].V"] == 95.5 and points["705.Crv[1].Pt[1].Var"] == 20
    assert points["705.Crv[3].ReadOnly"] == 0
    assert points["711.Ctl[2].ReadOnly"] == 0
    assert "705.V_SF" not in points


async def test_vendor_event_bits_are_named_through_the_table_of_the_devices_make(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink):
        await sink.wait_for("telemetry")
        simulator.raise_event(0, point="103.EvtVnd1")  # the simulator's make (Gridfleet): fan failure
        simulator.raise_event(9, point="103.EvtVnd1")  # a bit its table does not name
        named = await sink.wait_for("alarm", code="vendor.gridfleet.fan_failure", state="raised")
        unnamed = await sink.wait_for("alarm", code="sunspec.vendor.103.EvtVnd1.bit_9", state="raised")

    assert named["payload"]["severity"] == "minor" and named["payload"]["message"] == "inv-1: Cooling fan failure"
    assert unnamed["payload"]["severity"] == "indeterminate"


async def test_a_sites_vendor_table_names_the_bits_of_another_make(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    vendor_events = {
        "Acme Solar": {"103.EvtVnd2": {"4": {"code": "acme.arc_fault", "severity": "critical", "message": "Arc fault"}}}
    }
    async with SunSpecSimulator(values={1: {"Mn": "Acme Solar"}}) as sim:
        async with FieldStack({"devices": [device_entry(sim)], "vendor_events": vendor_events}, sink):
            await sink.wait_for("telemetry")
            sim.raise_event(4, point="103.EvtVnd2")
            alarm = await sink.wait_for("alarm", code="acme.arc_fault", state="raised")

    assert alarm["payload"]["severity"] == "critical"
    assert alarm["payload"]["details"] == {"bit": 4, "points": ["103.EvtVnd2"]}


def test_a_vendor_table_with_mistakes_names_each_one(sink: RecordingSink) -> None:
    vendor_events = {
        "Acme": {
            "103.Evt1": {"1": {"code": "x"}},
            "103.EvtVnd1": {"40": {"code": "x"}, "2": {"code": "x", "severity": "fatal"}, "3": {"message": "m"}},
        }
    }
    with pytest.raises(FieldConfigError) as caught:
        FieldStack({"devices": [], "vendor_events": vendor_events}, sink)

    assert caught.value.problems[0].startswith("vendor_events.Acme.103.Evt1: not a vendor bitfield")
    assert caught.value.problems[1:] == [
        "vendor_events.Acme.103.EvtVnd1.40: the key is a bit number 0..31",
        "vendor_events.Acme.103.EvtVnd1.2.severity: one of critical, major, minor, warning, indeterminate",
        "vendor_events.Acme.103.EvtVnd1.3.code: required, 1..200 characters",
    ]
