"""SunSpec event bits and how each becomes a Gridfleet alarm.

Models 101-103 `Evt1` and model 701 `Alrm` share the same bit meanings (701 adds bit 16),
so one table serves both. The codes are Gridfleet's own, stable strings
(`sunspec.evt1.*` for both, as docs/protocol/uplink.md shows them); they are not the
IEEE 2030.5 alarmStatus bits (translate there, do not copy). docs/field-devices.md renders
this table; keep them in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """ISA-18.2 style severities, as the server stores them."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class EventDefinition:
    bit: int
    code: str
    severity: Severity
    message: str


#: (model id, point name) of the bitfields read for alarms.
INVERTER_EVENT_POINTS: tuple[tuple[int, str], ...] = ((101, "Evt1"), (102, "Evt1"), (103, "Evt1"), (701, "Alrm"))

EVENT_BITS: dict[int, EventDefinition] = {
    e.bit: e
    for e in (
        EventDefinition(0, "sunspec.evt1.ground_fault", Severity.CRITICAL, "Ground fault"),
        EventDefinition(1, "sunspec.evt1.dc_over_voltage", Severity.MAJOR, "DC over-voltage"),
        EventDefinition(2, "sunspec.evt1.ac_disconnect", Severity.MAJOR, "AC disconnect open"),
        EventDefinition(3, "sunspec.evt1.dc_disconnect", Severity.MAJOR, "DC disconnect open"),
        EventDefinition(4, "sunspec.evt1.grid_disconnect", Severity.MAJOR, "Disconnected from the grid"),
        EventDefinition(5, "sunspec.evt1.cabinet_open", Severity.WARNING, "Cabinet open"),
        EventDefinition(6, "sunspec.evt1.manual_shutdown", Severity.WARNING, "Manual shutdown"),
        EventDefinition(7, "sunspec.evt1.over_temperature", Severity.MAJOR, "Over-temperature"),
        EventDefinition(8, "sunspec.evt1.over_frequency", Severity.MINOR, "AC over-frequency"),
        EventDefinition(9, "sunspec.evt1.under_frequency", Severity.MINOR, "AC under-frequency"),
        EventDefinition(10, "sunspec.evt1.ac_over_voltage", Severity.MINOR, "AC over-voltage"),
        EventDefinition(11, "sunspec.evt1.ac_under_voltage", Severity.MINOR, "AC under-voltage"),
        EventDefinition(12, "sunspec.evt1.blown_string_fuse", Severity.MAJOR, "Blown string fuse"),
        EventDefinition(13, "sunspec.evt1.under_temperature", Severity.MINOR, "Under-temperature"),
        EventDefinition(14, "sunspec.evt1.memory_loss", Severity.MAJOR, "Memory loss"),
        EventDefinition(15, "sunspec.evt1.hardware_test_failure", Severity.CRITICAL, "Hardware test failure"),
        EventDefinition(
            16, "sunspec.evt1.manufacturer_alarm", Severity.INDETERMINATE, "Manufacturer alarm (see MnAlrmInfo)"
        ),
    )
}

COMM_LOSS = EventDefinition(-1, "field.comms_lost", Severity.MAJOR, "No response from field device")


def unknown_bit(bit: int) -> EventDefinition:
    """Bits 17-31 are reserved in the standard; a device setting one still deserves an alarm."""
    return EventDefinition(bit, f"sunspec.evt1.bit_{bit}", Severity.INDETERMINATE, f"Reserved event bit {bit} set")


def definition_for(bit: int) -> EventDefinition:
    return EVENT_BITS.get(bit) or unknown_bit(bit)
