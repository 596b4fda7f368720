"""The agent's field protocol stack: SunSpec Modbus devices, their alarms, local MQTT.

The daemon needs only `FieldStack` and the configuration/error types re-exported here;
protocol front ends (IEEE 2030.5, DNP3, IEC 104, site logic) send controls through
`FieldStack.apply_setpoint` with the setpoint types re-exported here.
See docs/field-devices.md for the configuration, record payloads, setpoints and MQTT topics.
"""

from gridfleet_agent.field.config import DeviceConfig, FieldConfig, FieldConfigError, MqttConfig
from gridfleet_agent.field.errors import (
    ControlError,
    ControlFailed,
    ControlRejected,
    DeviceUnreachable,
    FieldDeviceError,
)
from gridfleet_agent.field.setpoints import (
    Connection,
    Curve,
    PointValue,
    PowerFactor,
    PowerLimit,
    Setpoint,
    SetpointResult,
)
from gridfleet_agent.field.stack import CommandOutcome, FieldStack, Record, Sink, UnknownDevice

__all__ = [
    "CommandOutcome",
    "Connection",
    "ControlError",
    "ControlFailed",
    "ControlRejected",
    "Curve",
    "DeviceConfig",
    "DeviceUnreachable",
    "FieldConfig",
    "FieldConfigError",
    "FieldDeviceError",
    "FieldStack",
    "MqttConfig",
    "PointValue",
    "PowerFactor",
    "PowerLimit",
    "Record",
    "Setpoint",
    "SetpointResult",
    "Sink",
    "UnknownDevice",
]
