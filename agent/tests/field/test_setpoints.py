"""The one setpoint path against the simulator on a loopback port: every kind of control is
written to the model that carries it, read back from the registers, logged and reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gridfleet_agent.field import (
    Connection,
    ControlFailed,
    ControlRejected,
    Curve,
    FieldStack,
    PointValue,
    PowerFactor,
    PowerLimit,
)
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from .fixtures import RecordingSink

DeviceEntry = Callable[..., dict[str, Any]]

VOLT_VAR = {"DeptRef": 1, "Pt": [{"V": 92.0, "Var": 30}, {"V": 98.0, "Var": 0}, {"V": 108.0, "Var": -30}]}


async def test_every_attempt_is_reported_as_a_field_setpoint_event_with_its_source(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        await stack.apply_setpoint("inv-1", PowerLimit(40.0), source="dnp3")
        with pytest.raises(ControlRejected):
            await stack.apply_setpoint("inv-1", Curve(712, {"Pt": [{"W": 50, "Var": 10}]}), source="iec104")

    ok, refused = [r["payload"] for r in sink.of_kind("event")]
    assert ok["name"] == refused["name"] == "field.setpoint"
    assert ok["data"] == {
        "device": "inv-1",
        "source": "dnp3",
        "setpoint": {"kind": "power_limit", "percent": 40.0, "revert_after_s": None},
        "status": "succeeded",
        "sunspec_model": 704,
        "readback": {"WMaxLimPct": 40.0, "WMaxLimPctEna": 1},
    }
    assert refused["data"]["status"] == "rejected" and refused["data"]["source"] == "iec104"
    assert "device has no model 712 (watt-var); its curve models: [705, 711]" in refused["message"]


async def test_disconnect_and_reconnect_go_through_model_703_and_stop_the_output(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    simulator.set_available_power(6000)
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        off = await stack.apply_setpoint("inv-1", Connection(False), source="test")
        assert simulator.get(703, "ES") == 0
        await sink.wait_for_points(W=0, ConnSt=0)
        await stack.apply_setpoint("inv-1", Connection(True), source="test")
        await sink.wait_for_points(W=6000, ConnSt=1)

    assert (off.sunspec_model, off.readback) == (703, {"ES": 0})


async def test_without_model_703_connection_uses_model_123_with_its_reversion_timer(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with SunSpecSimulator(models=(1, 101, 123)) as sim:
        async with FieldStack({"devices": [device_entry(sim)]}, sink) as stack:
            result = await stack.apply_setpoint("inv-1", Connection(False, revert_after_s=300), source="test")

    assert result.sunspec_model == 123
    assert (sim.get(123, "Conn"), sim.get(123, "Conn_RvrtTms")) == (0, 300)


async def test_power_factor_is_written_to_model_704_with_its_excitation(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        result = await stack.apply_setpoint("inv-1", PowerFactor(0.95, absorbing_vars=True), source="test")

    assert result.readback == {"PFWInjEna": 1, "PFWInj": {"PF": 0.95, "Ext": 1}}
    assert simulator.get(704, "PFWInjEna") == 1


async def test_power_factor_falls_back_to_model_123_as_a_signed_setting(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with SunSpecSimulator(models=(1, 101, 123)) as sim:
        async with FieldStack({"devices": [device_entry(sim)]}, sink) as stack:
            await stack.apply_setpoint("inv-1", PowerFactor(0.9, absorbing_vars=True), source="test")

    assert (sim.get(123, "OutPFSet"), sim.get(123, "OutPFSet_Ena")) == (-0.9, 1)


async def test_a_volt_var_curve_is_loaded_into_a_free_slot_adopted_and_enabled(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        result = await stack.apply_setpoint("inv-1", Curve(705, VOLT_VAR), source="test")

    active = simulator.curve(705, 1)  # the device copied slot 2 into its active curve
    assert active["ActPt"] == 3 and active["DeptRef"] == 1
    assert [(p["V"], p["Var"]) for p in active["Pt"][:3]] == [(92.0, 30), (98.0, 0), (108.0, -30)]
    assert simulator.get(705, "Ena") == 1
    assert result.readback["AdptCrvReq"] == 2 and result.readback["AdptCrvRslt"] == 1
    assert result.readback["Crv"]["2"]["Pt"]["3"] == {"V": 108.0, "Var": -30}


async def test_a_curve_the_device_will_not_adopt_is_rejected_and_not_enabled(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    settings = {"Pt": [{"V": 92.0, "Var": 30}], "ActPt": 0}  # no active points: the device refuses it
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        with pytest.raises(ControlRejected, match=r"did not adopt Crv 2 \(AdptCrvRslt: failed\)"):
            await stack.apply_setpoint("inv-1", Curve(705, settings), source="test")

    assert simulator.get(705, "Ena") == 0


async def test_frequency_droop_control_sets_use_the_ctl_group_of_model_711(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    settings = {"DbOf": 0.036, "DbUf": 0.036, "KOf": 0.05, "KUf": 0.05, "RspTms": 5}
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        result = await stack.apply_setpoint("inv-1", Curve(711, settings), source="test")

    assert result.readback["AdptCtlRslt"] == 1
    assert simulator.curve(711, 1)["KOf"] == 0.05 and simulator.curve(711, 1)["DbOf"] == 0.036


@pytest.mark.parametrize(
    ("setpoint", "message"),
    [
        (Curve(705, {"Pt": [{"V": 90, "Var": 0}] * 5}), r"Crv\[2\]\.Pt: the device holds 4 entries, got entry 5"),
        (Curve(705, {"VRefAuto": 230}), r"705\.Crv\[2\]\.VRefAuto is read-only"),
        (Curve(705, {"Volts": 230}), r"model 705 has no point or group 'Volts'"),
        (PointValue("704.WMaxLimPctRvrtRem", 3), r"704\.WMaxLimPctRvrtRem is read-only"),
        (PointValue("999.X", 3), "device has no model 999"),
    ],
)
async def test_malformed_setpoints_are_rejected_with_the_field_to_change(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry, setpoint: Any, message: str
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        with pytest.raises(ControlRejected, match=message):
            await stack.apply_setpoint("inv-1", setpoint, source="test")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PowerLimit(101), "0..100"),
        (lambda: PowerFactor(1.2), "power factor must be > 0 and <= 1"),
        (lambda: Connection("yes"), "connected must be true or false"),  # type: ignore[arg-type]
        (lambda: Curve(700, {"x": 1}), "curve model must be one of"),
        (lambda: PowerLimit(50, revert_after_s=-5), "revert_after_s"),
    ],
)
def test_setpoints_out_of_range_are_refused_before_anything_is_sent(build: Any, message: str) -> None:
    with pytest.raises(ControlRejected, match=message):
        build()


async def test_a_generic_point_write_is_read_back(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        result = await stack.apply_setpoint("inv-1", PointValue("704.WSetPct", 42.5), source="test")

    assert result.readback == {"WSetPct": 42.5} and simulator.get(704, "WSetPct") == 42.5


async def test_a_setpoint_the_device_ignores_is_failed(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    simulator.ignore_writes()
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        with pytest.raises(ControlFailed, match=r"read back 703\.ES=1 after writing connection connected=False"):
            await stack.apply_setpoint("inv-1", Connection(False), source="test")

    assert sink.of_kind("event")[-1]["payload"]["data"]["status"] == "failed"


@pytest.mark.parametrize(
    ("name", "args", "status"),
    [
        ("set_connection", {"device": "inv-1", "connected": False}, "succeeded"),
        ("set_power_factor", {"device": "inv-1", "pf": 0.97}, "succeeded"),
        ("set_curve", {"device": "inv-1", "model": 705, "settings": VOLT_VAR}, "succeeded"),
        ("set_point", {"device": "inv-1", "point": "704.WSetPct", "value": 10}, "succeeded"),
        ("set_connection", {"device": "inv-1"}, "rejected"),
        ("set_curve", {"device": "inv-1", "model": "705"}, "rejected"),
    ],
)
async def test_server_commands_for_each_setpoint_take_the_same_path(
    simulator: SunSpecSimulator,
    sink: RecordingSink,
    device_entry: DeviceEntry,
    name: str,
    args: dict[str, Any],
    status: str,
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        outcome = await stack.execute(name, args)

    assert outcome.status == status, outcome.message
    if status == "succeeded":
        assert sink.of_kind("event")[-1]["payload"]["data"]["source"] == "server"
