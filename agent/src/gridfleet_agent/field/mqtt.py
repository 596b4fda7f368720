"""Local MQTT publishing of field records (off unless `mqtt.enabled` is true).

Topic scheme (docs/field-devices.md), all QoS 1, each message the whole record as JSON:

    <prefix>/field/<device id>/telemetry        retained: the last reading
    <prefix>/field/<device id>/alarms/<code>    retained: the last state of that alarm
    <prefix>/field/<device id>/inventory        retained: identity from model 1

Retained messages let a local display that connects later see the current picture at once.
paho's network loop runs in its own thread and reconnects by itself, so a broker that is
down or restarts never blocks polling; QoS 1 messages published meanwhile are queued.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gridfleet_agent.field.config import MqttConfig

logger = logging.getLogger(__name__)

QOS = 1


def messages_for(prefix: str, record: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(topic, message, retained) for each message a record becomes."""
    payload = record["payload"]
    if record["kind"] == "telemetry":
        return [(f"{prefix}/field/{payload['device']}/telemetry", record, True)]
    if record["kind"] == "alarm":
        return [(f"{prefix}/field/{payload['device']}/alarms/{payload['code']}", record, True)]
    if record["kind"] == "inventory":
        return [
            (f"{prefix}/field/{entry['key']}/inventory", {**record, "payload": entry}, True)
            for entry in payload.get("field_devices", [])
        ]
    return []


class MqttPublisher:
    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self._connected = threading.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=config.client_id or "",
            protocol=paho.MQTTv311,
        )
        if config.username is not None:
            self._client.username_pw_set(config.username, config.password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def start(self) -> None:
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish(self, record: dict[str, Any]) -> None:
        for topic, message, retain in messages_for(self.config.topic_prefix, record):
            info = self._client.publish(topic, json.dumps(message, separators=(",", ":")), qos=QOS, retain=retain)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                logger.warning("MQTT publish to %s failed: %s", topic, paho.error_string(info.rc))

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            logger.warning("MQTT broker %s:%s refused the connection: %s", self.config.host, self.config.port, reason)
            return
        self._connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
