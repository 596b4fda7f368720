"""What can go wrong with a field device or a control sent to it."""

from __future__ import annotations

from gridfleet_agent.errors import AgentError


class FieldDeviceError(AgentError):
    """Base class for problems with a field device."""


class DeviceUnreachable(FieldDeviceError):
    """No usable answer: connection refused, timeout, or no SunSpec map at 40000/0/50000."""


class ControlError(FieldDeviceError):
    """A control could not be applied; the message says why."""


class ControlRejected(ControlError):
    """Refused without effect: value out of range, control not implemented, device said no."""


class ControlFailed(ControlError):
    """Tried and failed: the device stopped answering, or read back something else."""
