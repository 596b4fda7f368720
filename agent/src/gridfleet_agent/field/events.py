"""SunSpec event bits and how each becomes a Gridfleet alarm.

An `EventSource` is one family of event bitfields with one meaning per bit:
- inverters: models 101-103 `Evt1` and model 701 `Alrm` share the same bit meanings (701 adds
  bit 16), so one table serves both (`sunspec.evt1.*`, as docs/protocol/uplink.md shows them);
- meters: models 201-204 `Evt` (`sunspec.meter.*`);
- batteries: model 802 `Evt1` (`sunspec.battery.*`);
- vendor bitfields (101-103 `EvtVnd1..4`, 802 `EvtVnd1..2`): their meaning depends on the
  make, so they are mapped through `VENDOR_EVENTS` (per make, extendable from the field
  configuration's `vendor_events`); a vendor bit no table names still raises an
  indeterminate alarm rather than going unseen.
The codes are Gridfleet's own, stable strings; they are not the IEEE 2030.5 alarmStatus bits
(translate there, do not copy). docs/field-devices.md renders these tables; keep them in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


@dataclass(frozen=True)
class EventSource:
    """Bitfields sharing one bit table; the bits of all implemented ones are OR-ed."""

    key: str
    points: tuple[tuple[int, str], ...]
    bits: Mapping[int, EventDefinition]
    unknown: Callable[[int], EventDefinition]

    def definition(self, bit: int) -> EventDefinition:
        return self.bits.get(bit) or self.unknown(bit)


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


def _table(prefix: str, rows: tuple[tuple[int, str, Severity, str], ...]) -> dict[int, EventDefinition]:
    return {bit: EventDefinition(bit, f"{prefix}.{name}", severity, message) for bit, name, severity, message in rows}


def _unknown(prefix: str, what: str) -> Callable[[int], EventDefinition]:
    return lambda bit: EventDefinition(bit, f"{prefix}.bit_{bit}", Severity.INDETERMINATE, f"{what} bit {bit} set")


_S = Severity
#: Models 201-204 `Evt` (bits 0-1 reserved; 16-30 are the OEM's, see VENDOR_EVENTS for a make's names).
METER_EVENT_BITS = _table(
    "sunspec.meter",
    (
        (2, "power_failure", _S.MAJOR, "Meter: power failure"),
        (3, "under_voltage", _S.MINOR, "Meter: under-voltage"),
        (4, "low_pf", _S.WARNING, "Meter: low power factor"),
        (5, "over_current", _S.MAJOR, "Meter: over-current"),
        (6, "over_voltage", _S.MINOR, "Meter: over-voltage"),
        (7, "missing_sensor", _S.MAJOR, "Meter: missing sensor"),
    ),
)
#: Model 802 `Evt1`.
BATTERY_EVENT_BITS = _table(
    "sunspec.battery",
    (
        (0, "communication_error", _S.MAJOR, "Battery: communication error"),
        (1, "over_temp_alarm", _S.CRITICAL, "Battery: over-temperature alarm"),
        (2, "over_temp_warning", _S.WARNING, "Battery: over-temperature warning"),
        (3, "under_temp_alarm", _S.MAJOR, "Battery: under-temperature alarm"),
        (4, "under_temp_warning", _S.WARNING, "Battery: under-temperature warning"),
        (5, "over_charge_current_alarm", _S.MAJOR, "Battery: over charge current alarm"),
        (6, "over_charge_current_warning", _S.WARNING, "Battery: over charge current warning"),
        (7, "over_discharge_current_alarm", _S.MAJOR, "Battery: over discharge current alarm"),
        (8, "over_discharge_current_warning", _S.WARNING, "Battery: over discharge current warning"),
        (9, "over_volt_alarm", _S.MAJOR, "Battery: over-voltage alarm"),
        (10, "over_volt_warning", _S.WARNING, "Battery: over-voltage warning"),
        (11, "under_volt_alarm", _S.MAJOR, "Battery: under-voltage alarm"),
        (12, "under_volt_warning", _S.WARNING, "Battery: under-voltage warning"),
        (13, "under_soc_min_alarm", _S.MAJOR, "Battery: state of charge below minimum (alarm)"),
        (14, "under_soc_min_warning", _S.WARNING, "Battery: state of charge below minimum (warning)"),
        (15, "over_soc_max_alarm", _S.MAJOR, "Battery: state of charge above maximum (alarm)"),
        (16, "over_soc_max_warning", _S.WARNING, "Battery: state of charge above maximum (warning)"),
        (17, "voltage_imbalance_warning", _S.WARNING, "Battery: voltage imbalance"),
        (18, "temperature_imbalance_alarm", _S.MAJOR, "Battery: temperature imbalance alarm"),
        (19, "temperature_imbalance_warning", _S.WARNING, "Battery: temperature imbalance warning"),
        (20, "contactor_error", _S.MAJOR, "Battery: contactor error"),
        (21, "fan_error", _S.MINOR, "Battery: fan error"),
        (22, "ground_fault", _S.CRITICAL, "Battery: ground fault"),
        (23, "open_door_error", _S.WARNING, "Battery: enclosure door open"),
        (24, "current_imbalance_warning", _S.WARNING, "Battery: current imbalance"),
        (25, "other_alarm", _S.MAJOR, "Battery: other alarm"),
        (26, "other_warning", _S.WARNING, "Battery: other warning"),
        (28, "configuration_alarm", _S.MAJOR, "Battery: configuration alarm"),
        (29, "configuration_warning", _S.WARNING, "Battery: configuration warning"),
    ),
)

EVENT_SOURCES: tuple[EventSource, ...] = (
    EventSource("sunspec.evt1", INVERTER_EVENT_POINTS, EVENT_BITS, unknown_bit),
    EventSource(
        "sunspec.meter",
        ((201, "Evt"), (202, "Evt"), (203, "Evt"), (204, "Evt")),
        METER_EVENT_BITS,
        _unknown("sunspec.meter", "Meter event"),
    ),
    EventSource("sunspec.battery", ((802, "Evt1"),), BATTERY_EVENT_BITS, _unknown("sunspec.battery", "Battery event")),
)

#: The vendor bitfields, each its own source: their bits mean what the make says.
VENDOR_EVENT_POINTS: tuple[tuple[int, str], ...] = (
    *((m, f"EvtVnd{n}") for m in (101, 102, 103) for n in (1, 2, 3, 4)),
    (802, "EvtVnd1"),
    (802, "EvtVnd2"),
)

#: Make (model 1 `Mn`, case-insensitive) -> "<model>.<point>" -> bit -> definition. Shipped
#: for the makes we have manuals for; a site adds its own in the field configuration's
#: `vendor_events` (same shape), which wins over this table.
VENDOR_EVENTS: Mapping[str, Mapping[str, Mapping[int, EventDefinition]]] = {
    "gridfleet": {  # the simulator (python -m gridfleet_agent_simulators.sunspec)
        "103.EvtVnd1": _table(
            "vendor.gridfleet",
            (
                (0, "fan_failure", _S.MINOR, "Cooling fan failure"),
                (1, "insulation_warning", _S.WARNING, "DC insulation resistance low"),
                (2, "firmware_mismatch", _S.WARNING, "Firmware of the power stage and controller differ"),
            ),
        ),
        "802.EvtVnd1": _table(
            "vendor.gridfleet",
            ((0, "bms_watchdog", _S.MAJOR, "Battery management system watchdog reset"),),
        ),
    },
}


def vendor_source(
    make: str | None,
    model_id: int,
    point: str,
    extra: Mapping[str, Mapping[str, Mapping[int, EventDefinition]]] | None = None,
) -> EventSource:
    """The event source for one vendor bitfield of a device of this make."""
    ref = f"{model_id}.{point}"
    make_key = (make or "").strip().lower()
    bits = {**VENDOR_EVENTS.get(make_key, {}).get(ref, {}), **(extra or {}).get(make_key, {}).get(ref, {})}
    return EventSource(f"vendor:{ref}", ((model_id, point),), bits, _unknown(f"sunspec.vendor.{ref}", f"Vendor {ref}"))
