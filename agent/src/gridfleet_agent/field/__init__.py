"""The agent's field protocol stack: SunSpec Modbus devices, their alarms, local MQTT.

The daemon needs only `FieldStack` and the configuration/error types re-exported here;
see docs/field-devices.md for the configuration, record payloads and MQTT topics.
"""

from gridfleet_agent.field.config import DeviceConfig, FieldConfig, FieldConfigError, MqttConfig
from gridfleet_agent.field.stack import CommandOutcome, FieldStack, Record, Sink, UnknownDevice
from gridfleet_agent.field.sunspec import (
    ControlError,
    ControlFailed,
    ControlRejected,
    DeviceUnreachable,
    FieldDeviceError,
)

__all__ = [
    "CommandOutcome",
    "ControlError",
    "ControlFailed",
    "ControlRejected",
    "DeviceConfig",
    "DeviceUnreachable",
    "FieldConfig",
    "FieldConfigError",
    "FieldDeviceError",
    "FieldStack",
    "MqttConfig",
    "Record",
    "Sink",
    "UnknownDevice",
]
