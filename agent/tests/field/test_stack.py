"""FieldStack against the simulator on a loopback port: what reaches the agent's queue."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from gridfleet_agent.field import ControlRejected, FieldConfigError, FieldStack, PowerLimit
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from .fixtures import RecordingSink

DeviceEntry = Callable[..., dict[str, Any]]


async def test_discovery_reports_make_model_serial_and_firmware_from_model_1(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    simulator.update(1, {"Mn": "Acme Solar", "Md": "AS-10K", "SN": "AS10K-0042", "Vr": "3.2.1"})

    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        record = await sink.wait_for("inventory")

    assert record["payload"] == {
        "field_devices": [
            {
                "key": "inv-1",
                "kind": "inverter",
                "protocol": "sunspec-tcp",
                "address": f"127.0.0.1:{simulator.port}/1",
                "make": "Acme Solar",
                "model": "AS-10K",
                "serial": "AS10K-0042",
                "firmware_version": "3.2.1",
            }
        ]
    }
    assert stack.field_devices() == record["payload"]["field_devices"]
    assert record["ts"].endswith("Z")
    assert len(sink.of_kind("inventory")) == 1  # re-sent only when the identity changes


async def test_telemetry_carries_the_values_set_on_the_device_with_scale_factors_applied(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    simulator.update(
        103,
        {
            "W": 4321,
            "VAr": -250,
            "PF": 95.5,
            "Hz": 59.98,
            "A": 18.77,
            "PhVphA": 241.3,
            "WH": 2_000_001,
            "TmpCab": 47.3,
            "St": 5,
        },
    )

    async with FieldStack({"devices": [device_entry(simulator)]}, sink):
        record = await sink.wait_for_points(W=4321)

    points = record["payload"]["points"]
    assert record["payload"]["device"] == "inv-1"
    assert points["VAr"] == -250
    assert points["PF"] == 0.955  # model 103 gives percent; telemetry carries the ratio
    assert points["Hz"] == 59.98
    assert points["A"] == 18.77
    assert points["V"] == 241.3
    assert points["WH"] == 2_000_001
    assert points["TmpCab"] == 47.3
    assert points["St"] == 5
    assert points["TmpAmb"] == 22.0  # only model 701 has it
    assert "TmpTrns" not in points  # 'not implemented' in both models: missing, not zero


async def test_der_model_701_alone_is_enough_for_telemetry_and_alarms(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with SunSpecSimulator(models=(1, 701)) as sim:
        sim.update(701, {"W": 3100, "PF": -0.9, "Hz": 60.01, "LNV": 120.5, "TotWhInj": 98765})
        async with FieldStack({"devices": [device_entry(sim, debounce_polls=1)]}, sink):
            record = await sink.wait_for_points(W=3100)
            sim.raise_event(16)
            alarm = await sink.wait_for("alarm", code="sunspec.evt1.manufacturer_alarm", state="raised")

    points = record["payload"]["points"]
    assert (points["PF"], points["Hz"], points["V"], points["WH"]) == (-0.9, 60.01, 120.5, 98765)
    assert alarm["payload"]["details"] == {"bit": 16, "points": ["701.Alrm"]}


async def test_configured_models_and_points_are_reported_raw(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    entry = device_entry(simulator, models=[103], points=["704.WMaxLimPct", "123.Conn"])

    async with FieldStack({"devices": [entry]}, sink):
        record = await sink.wait_for("telemetry")

    points = record["payload"]["points"]
    assert points["704.WMaxLimPct"] == 100.0
    assert points["123.Conn"] == 1
    assert "TmpAmb" not in points  # 701 is out of scope when models are listed


async def test_an_injected_fault_raises_an_alarm_and_clears_when_the_fault_clears(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink):
        await sink.wait_for("telemetry")
        simulator.raise_event(0)  # ground fault
        raised = await sink.wait_for("alarm", code="sunspec.evt1.ground_fault", state="raised")
        simulator.clear_event(0)
        cleared = await sink.wait_for("alarm", code="sunspec.evt1.ground_fault", state="cleared", after=raised)

    assert raised["payload"] == {
        "source": "device:inv-1",
        "device": "inv-1",
        "code": "sunspec.evt1.ground_fault",
        "severity": "critical",
        "state": "raised",
        "message": "inv-1: Ground fault",
        "details": {"bit": 0, "points": ["103.Evt1", "701.Alrm"]},
    }
    assert cleared["payload"]["severity"] == "critical"
    ground_faults = [
        r["payload"]["state"] for r in sink.of_kind("alarm") if r["payload"]["code"] == raised["payload"]["code"]
    ]
    assert ground_faults == ["cleared", "raised", "cleared"]  # the first is the start-up resync


async def test_the_first_poll_clears_every_alarm_the_device_does_not_report(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    """Alarm state lives in memory: after an agent restart, faults that went away meanwhile
    must not stay open on the server (which ignores clears of alarms that are not open)."""
    simulator.raise_event(7)
    async with FieldStack({"devices": [device_entry(simulator)]}, sink):
        await sink.wait_for("alarm", code="sunspec.evt1.over_temperature", state="raised")

    first_poll = {r["payload"]["code"]: r["payload"]["state"] for r in sink.of_kind("alarm")}
    assert first_poll.pop("sunspec.evt1.over_temperature") == "raised"
    assert first_poll.pop("field.comms_lost") == "cleared"
    assert len(first_poll) == 16 and set(first_poll.values()) == {"cleared"}


async def test_losing_communication_raises_its_alarm_and_recovery_clears_it(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator, timeout=0.3)]}, sink):
        await sink.wait_for("telemetry")
        simulator.stop_responding()
        raised = await sink.wait_for("alarm", code="field.comms_lost", state="raised")
        telemetry_before = len(sink.of_kind("telemetry"))
        simulator.resume_responding()
        await sink.wait_for("alarm", code="field.comms_lost", state="cleared", after=raised)
        await sink.wait_for_points(W=5000)

    assert raised["payload"]["severity"] == "major"
    assert raised["payload"]["details"]["address"] == f"127.0.0.1:{simulator.port}/1"
    assert "timed out" in raised["payload"]["details"]["error"]
    assert len(sink.of_kind("telemetry")) > telemetry_before


async def test_a_device_that_never_answers_raises_the_communication_alarm(
    sink: RecordingSink, device_entry: DeviceEntry, simulator: SunSpecSimulator
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket is closed

    async with FieldStack({"devices": [device_entry(simulator, port=closed_port)]}, sink):
        raised = await sink.wait_for("alarm", code="field.comms_lost", state="raised")

    assert "refused" in raised["payload"]["details"]["error"].lower()
    assert sink.of_kind("telemetry") == []
    # Only the link going down signals an inventory change; no device was identified.
    assert [r["payload"]["field_devices"] for r in sink.of_kind("inventory")] == [[]]


async def test_power_limit_command_is_written_to_model_704_and_read_back(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        outcome = await stack.execute("set_power_limit", {"device": "inv-1", "limit_pct": 60.0, "revert_after_s": 900})

    assert outcome.status == "succeeded", outcome.message
    assert outcome.result == {
        "readback_pct": 60.0,
        "sunspec_model": 704,
        "readback": {"WMaxLimPct": 60.0, "WMaxLimPctEna": 1, "WMaxLimPctRvrtTms": 900},
        "setpoint": {"kind": "power_limit", "percent": 60.0, "revert_after_s": 900},
    }
    assert simulator.get(704, "WMaxLimPct") == 60.0
    assert simulator.get(704, "WMaxLimPctEna") == 1
    assert simulator.get(704, "WMaxLimPctRvrtTms") == 900


async def test_power_limit_falls_back_to_model_123_immediate_controls(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with SunSpecSimulator(models=(1, 101, 123)) as sim:
        async with FieldStack({"devices": [device_entry(sim)]}, sink) as stack:
            result = await stack.apply_setpoint("inv-1", PowerLimit(35.5), source="test")
            assert (sim.get(123, "WMaxLimPct"), sim.get(123, "WMaxLim_Ena")) == (35.5, 1)
            await stack.apply_setpoint("inv-1", PowerLimit(None), source="test")  # lift the limit

    assert (result.sunspec_model, result.readback["WMaxLimPct"]) == (123, 35.5)
    assert sim.get(123, "WMaxLim_Ena") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"device": "inv-1", "limit_pct": 5.0}, "device refused power_limit percent=5.0"),
        ({"device": "inv-1", "limit_pct": 120}, "must be 0..100"),
        ({"device": "inv-9", "limit_pct": 50}, "no field device 'inv-9'"),
        ({"device": "inv-1"}, "args.limit_pct"),
        ({"device": "inv-1", "limit_pct": 50, "revert_after_s": -1}, "args.revert_after_s"),
    ],
)
async def test_refused_power_limits_are_reported_as_rejected_and_change_nothing(
    sink: RecordingSink, device_entry: DeviceEntry, args: dict[str, Any], message: str
) -> None:
    async with SunSpecSimulator(power_limit_range=(10.0, 100.0)) as sim:
        async with FieldStack({"devices": [device_entry(sim)]}, sink) as stack:
            outcome = await stack.execute("set_power_limit", args)

    assert outcome.status == "rejected"
    assert message in outcome.message
    assert (sim.get(704, "WMaxLimPct"), sim.get(704, "WMaxLimPctEna")) == (100.0, 0)


async def test_a_power_limit_caps_the_output_of_a_producing_plant(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    simulator.set_available_power(8000)  # of a 10 kW rating
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        await sink.wait_for_points(W=8000, St=4)
        await stack.execute("set_power_limit", {"device": "inv-1", "limit_pct": 50})
        throttled = await sink.wait_for_points(W=5000)
        await stack.apply_setpoint("inv-1", PowerLimit(None), source="test")
        await sink.wait_for_points(W=8000, St=4)

    assert throttled["payload"]["points"]["St"] == 5  # THROTTLED
    assert throttled["payload"]["points"]["InvSt"] == 4


async def test_a_limit_the_device_does_not_apply_is_reported_as_failed(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    simulator.ignore_writes()
    async with FieldStack({"devices": [device_entry(simulator)]}, sink) as stack:
        outcome = await stack.execute("set_power_limit", {"device": "inv-1", "limit_pct": 60})

    assert outcome.status == "failed"
    assert (
        "read back 704.WMaxLimPct=100.0 704.WMaxLimPctEna=0 after writing power_limit percent=60.0" in outcome.message
    )


async def test_a_limit_for_a_device_that_stopped_answering_is_reported_as_failed(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator, timeout=0.3)]}, sink) as stack:
        await sink.wait_for("telemetry")
        simulator.stop_responding()
        outcome = await stack.execute("set_power_limit", {"device": "inv-1", "limit_pct": 60})

    assert outcome.status == "failed"
    assert "timed out" in outcome.message


async def test_a_device_without_power_controls_rejects_the_limit(
    sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with SunSpecSimulator(models=(1, 101)) as sim:
        async with FieldStack({"devices": [device_entry(sim)]}, sink) as stack:
            with pytest.raises(ControlRejected, match="no power limit control"):
                await stack.apply_setpoint("inv-1", PowerLimit(50), source="test")


async def test_unknown_commands_are_rejected(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    stack = FieldStack({"devices": [device_entry(simulator)]}, sink)
    outcome = await stack.execute("reboot", {})
    assert outcome.as_dict() == {"status": "rejected", "message": "the field stack does not implement command 'reboot'"}


def test_an_invalid_configuration_is_refused_before_anything_starts(sink: RecordingSink) -> None:
    with pytest.raises(FieldConfigError, match=r"devices\[0\]\.host: required for sunspec-tcp"):
        FieldStack({"devices": [{"id": "inv-1", "protocol": "sunspec-tcp"}]}, sink)


async def test_each_device_link_reports_its_state_point_count_and_errors(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: DeviceEntry
) -> None:
    async with FieldStack({"devices": [device_entry(simulator, timeout=0.2, comm_loss_after=2)]}, sink) as stack:
        await sink.wait_for("telemetry")
        up = stack.link_statuses()
        simulator.stop_responding()
        lost = await sink.wait_for("alarm", code="field.comms_lost", state="raised")
        down = stack.link_statuses()
        simulator.resume_responding()
        await sink.wait_for("alarm", code="field.comms_lost", state="cleared", after=lost)
        back = stack.link_statuses()

    assert up[0] | {"since": "-"} == {
        "name": "field:inv-1",
        "protocol": "sunspec-tcp",
        "role": "client",
        "endpoint": f"127.0.0.1:{simulator.port}/1",
        "state": "connected",
        "peer": "Gridfleet SIM-3P-10K",
        "points": up[0]["points"],
        "errors": 0,
        "last_error": "",
        "since": "-",
    }
    assert up[0]["points"] > 20
    assert (down[0]["state"], down[0]["errors"]) == ("down", 2)
    assert "timed out" in down[0]["last_error"] or "No response" in down[0]["last_error"]
    assert back[0]["state"] == "connected" and back[0]["errors"] >= 2
    # Each change of state is an inventory signal, so the gateway page follows at once.
    assert len(sink.of_kind("inventory")) >= 3
