"""What the field stack emits is what the server stores: records from a live simulator, sent
over the gateway WebSocket (protocol v1) as the agent's queue would send them."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from gridfleet_agent.field import FieldStack
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from agent.tests.field.fixtures import RecordingSink
from fleet.inventory.models import FieldDevice, Gateway
from fleet.monitoring.lifecycle import AlarmState
from fleet.monitoring.models import Alarm, TelemetryLatest
from tests.monitoring.helpers import GatewaySession, batch
from tests.pki.fixtures import enroll_gateway, enrolled_gateway, pki_ca

__all__ = ["enroll_gateway", "enrolled_gateway", "pki_ca"]  # fixtures used below

pytestmark = pytest.mark.django_db(transaction=True)


def as_batch_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number records as the agent's queue does; inventory goes as the daemon's full snapshot."""
    return [{"seq": seq, **record} for seq, record in enumerate(records, start=1)]


async def test_device_alarms_telemetry_and_identity_reach_the_server(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: Any, enrolled_gateway: Any
) -> None:
    simulator.update(1, {"Mn": "Acme Solar", "Md": "AS-10K", "SN": "AS10K-0042", "Vr": "3.2.1"})
    async with FieldStack({"devices": [device_entry(simulator, debounce_polls=1)]}, sink):
        await sink.wait_for("inventory")
        simulator.raise_event(0)
        raised = await sink.wait_for("alarm", code="sunspec.evt1.ground_fault", state="raised")
        simulator.clear_event(0)
        await sink.wait_for("alarm", code="sunspec.evt1.ground_fault", state="cleared", after=raised)

    records = [r for r in sink.records if r["kind"] != "telemetry"] + sink.of_kind("telemetry")[-1:]
    session = GatewaySession(str(await database_sync_to_async(enrolled_gateway.access_token)()))
    await session.start()
    ack = await session.request(batch("field-1", *as_batch_records(records)))
    await session.disconnect()

    assert ack["rejected"] == [] and ack["stored"] == len(records)
    gateway: Gateway = enrolled_gateway.gateway
    alarm = await database_sync_to_async(Alarm.objects.get)(gateway=gateway, code="sunspec.evt1.ground_fault")
    assert (alarm.state, alarm.severity, alarm.device) == (AlarmState.CLEARED_UNACKNOWLEDGED, "critical", "inv-1")
    device = await database_sync_to_async(FieldDevice.objects.get)(gateway=gateway)
    assert (device.make, device.model, device.serial, device.firmware_version) == (
        "Acme Solar",
        "AS-10K",
        "AS10K-0042",
        "3.2.1",
    )
    watts = await database_sync_to_async(TelemetryLatest.objects.get)(gateway=gateway, device="inv-1", point="W")
    assert watts.value == 5000
