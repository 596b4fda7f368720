"""Field records published to the local Mosquitto broker (127.0.0.1:1883)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from gridfleet_agent.field import FieldStack
from gridfleet_agent_simulators.sunspec import SunSpecSimulator

from .fixtures import RecordingSink

BROKER = ("127.0.0.1", 1883)


def broker_answers() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not broker_answers(), reason="no MQTT broker (Mosquitto) answers on 127.0.0.1:1883")


class Subscriber:
    """A local display: subscribes (QoS 1) and keeps every message as (topic, payload, retained, qos)."""

    def __init__(self, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes, bool, int]] = []
        self.client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.retain, m.qos))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(*BROKER)
        self.client.loop_start()
        self.client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(5), "broker did not confirm the subscription"

    async def wait_for(self, topic: str, timeout: float = 5.0, **payload: Any) -> tuple[dict[str, Any], bool]:
        """The first message on `topic` (whose record payload has these values): its JSON body
        and whether it came as retained."""

        async def first() -> tuple[dict[str, Any], bool]:
            while True:
                for t, body, retained, qos in list(self.messages):
                    record = json.loads(body) if t == topic else None
                    if record is not None and all(record["payload"].get(k) == v for k, v in payload.items()):
                        assert qos == 1, f"{topic} arrived with QoS {qos}"
                        return record, retained
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(first(), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A topic prefix of its own, and its retained messages wiped afterwards."""
    prefix = f"gridfleet-test-{uuid.uuid4().hex[:8]}"
    yield prefix
    cleaner = Subscriber(f"{prefix}/#")
    time.sleep(0.3)  # retained messages arrive right after subscribing
    for topic in {t for t, payload, _, _ in cleaner.messages if payload}:
        cleaner.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(2)
    cleaner.close()


async def test_telemetry_alarms_and_inventory_arrive_at_the_broker_as_retained_qos1_messages(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: Callable[..., dict[str, Any]], prefix: str
) -> None:
    subscriber = Subscriber(f"{prefix}/#")
    config = {
        "devices": [device_entry(simulator, debounce_polls=1)],
        "mqtt": {"enabled": True, "host": BROKER[0], "port": BROKER[1], "topic_prefix": prefix},
    }
    try:
        async with FieldStack(config, sink):
            await sink.wait_for("telemetry")
            simulator.raise_event(7)
            await sink.wait_for("alarm", code="sunspec.evt1.over_temperature", state="raised")

            telemetry, _ = await subscriber.wait_for(f"{prefix}/field/inv-1/telemetry")
            alarm, _ = await subscriber.wait_for(
                f"{prefix}/field/inv-1/alarms/sunspec.evt1.over_temperature", state="raised"
            )
            inventory, _ = await subscriber.wait_for(f"{prefix}/field/inv-1/inventory")
    finally:
        subscriber.close()

    assert telemetry["kind"] == "telemetry" and telemetry["payload"]["points"]["W"] == 5000
    assert alarm["payload"]["state"] == "raised" and alarm["payload"]["severity"] == "major"
    assert inventory["payload"]["serial"] == "SIM0001"

    late_display = Subscriber(f"{prefix}/field/inv-1/#")  # connects after the fact: sees the last values
    try:
        message, retained = await late_display.wait_for(f"{prefix}/field/inv-1/telemetry")
        assert retained and message["payload"]["device"] == "inv-1"
    finally:
        late_display.close()


async def test_mqtt_is_off_unless_enabled(
    simulator: SunSpecSimulator, sink: RecordingSink, device_entry: Callable[..., dict[str, Any]], prefix: str
) -> None:
    subscriber = Subscriber(f"{prefix}/#")
    try:
        async with FieldStack({"devices": [device_entry(simulator)], "mqtt": {"topic_prefix": prefix}}, sink):
            await sink.wait_for("telemetry")
            await sink.wait_for_points(W=5000)
        await asyncio.sleep(0.2)
        assert subscriber.messages == []
    finally:
        subscriber.close()
