"""SCADA/cloud protocol links as the agent reports them (inventory `protocols`, `protocol.comms_lost`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from fleet.inventory.models import FieldDevice
from fleet.monitoring.models import Alarm
from fleet.uplink import services as uplink
from fleet.uplink.protocol import Hello, parse_records
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayFactory, member

pytestmark = pytest.mark.usefixtures("clock")

# What gridfleet_agent.scada.status.LinkStatus.as_dict() reports for each service.
LINKS = [
    {
        "name": "dnp3-outstation",
        "protocol": "dnp3",
        "role": "outstation",
        "endpoint": "192.0.2.10:20000/10",
        "state": "connected",
        "peer": "198.51.100.7:40112",
        "points": 33,
        "errors": 2,
        "last_error": "control refused (OUT_OF_RANGE): AO87 2000 is 200 % of WMax; allowed 0..1000 (0..100 %)",
        "since": "2026-11-26T19:58:00Z",
    },
    {
        "name": "mqtt:aws",
        "protocol": "mqtt",
        "role": "client (aws-iot-core)",
        "endpoint": "mqtts://example.iot.us-west-2.amazonaws.com:8883",
        "state": "down",
        "peer": "",
        "points": 33,
        "errors": 1,
        "last_error": "[Errno 111] Connection refused",
        "since": "2026-11-26T19:59:00Z",
        "queued": 12,
    },
]


def test_protocol_links_and_dnp3_field_devices_show_on_the_gateway_page(organization: Any) -> None:
    gateway = GatewayFactory(organization=organization, serial="GW-SCADA-1")
    uplink.open_stream(gateway=gateway, hello=Hello(protocol=1, agent_version="0.9.0", stream="q-1", last_acked_seq=0))
    records = [
        {
            "seq": 1,
            "kind": "inventory",
            "ts": "2026-11-26T20:00:00Z",
            "payload": {
                "attributes": {"protocols": LINKS},
                "field_devices": [
                    {"key": "meter-1", "kind": "meter", "protocol": "dnp3-tcp", "address": "192.0.2.30:20000/10"}
                ],
            },
        },
        {
            "seq": 2,
            "kind": "alarm",
            "ts": "2026-11-26T20:00:01Z",
            "payload": {
                "source": "protocol:mqtt:aws",
                "code": "protocol.comms_lost",
                "severity": "major",
                "state": "raised",
                "message": "mqtt:aws: no peer connected for 300 s (mqtt client (aws-iot-core))",
            },
        },
    ]
    now = NOON_PACIFIC + timedelta(minutes=1)
    result = uplink.ingest_batch(gateway=gateway, stream="q-1", parsed=parse_records(records, now=now), now=now)
    assert result.stored == 2 and not result.rejected
    assert FieldDevice.objects.get(gateway=gateway).get_protocol_display() == "DNP3 TCP"
    assert Alarm.objects.get(gateway=gateway).code == "protocol.comms_lost"

    client = Client()
    client.force_login(member(organization, "viewer"))
    html = client.get(f"/gateways/{gateway.pk}/").content.decode()
    assert "<h2>Protocols</h2>" in html
    assert "dnp3-outstation" in html and "198.51.100.7:40112" in html and "AO87 2000" in html
    assert '<span class="badge failed">down</span>' in html  # the broker link
    assert "DNP3 TCP" in html  # the meter polled over DNP3, in the field devices table
