"""Reads for the head-end: what an EndDevice sees, and what an operator may see (tenancy here only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from fleet.accounts.selectors import organizations_visible_to
from fleet.inventory.models import Gateway
from fleet.inventory.selectors import group_members

from .models import DerControl, DerControlResponse, DerProgram, EndDevice, MirrorMeterReading, Reading


def end_device_by_lfdi(lfdi: str) -> EndDevice | None:
    return EndDevice.objects.select_related("gateway", "gateway__organization").filter(lfdi=lfdi.upper()).first()


def programs_for(device: EndDevice) -> list[DerProgram]:
    """The DER programs whose scope covers the device's gateway, by primacy."""
    gateway = device.gateway
    candidates = DerProgram.objects.filter(organization_id=gateway.organization_id).filter(
        Q(site__isnull=True) | Q(site_id=gateway.site_id)
    )
    return [p for p in candidates.select_related("group") if p.group is None or _in_group(gateway, p)]


def _in_group(gateway: Gateway, program: DerProgram) -> bool:
    assert program.group is not None
    return group_members(program.group).filter(pk=gateway.pk).exists()


def control_status(control: DerControl, *, now: datetime) -> int:
    """EventStatus.currentStatus as the server sees the event at `now`."""
    if control.cancelled:
        return DerControl.Status.CANCELLED_RANDOM if control.randomize_start_s else DerControl.Status.CANCELLED
    if control.start <= now:
        return DerControl.Status.ACTIVE
    return DerControl.Status.SCHEDULED


def current_controls(program: DerProgram, *, now: datetime) -> list[DerControl]:
    """Controls a device should still hear about: not yet ended (cancelled ones too, so devices learn it)."""
    return [c for c in program.controls.all() if c.start.timestamp() + c.duration_s > now.timestamp()]


def control_by_mrid(mrid: str) -> DerControl | None:
    return DerControl.objects.filter(mrid=mrid.upper()).first()


# --- operators ---------------------------------------------------------------------------------


def programs_visible_to(user: Any) -> QuerySet[DerProgram]:
    return DerProgram.objects.filter(organization__in=organizations_visible_to(user)).select_related(
        "organization", "site", "group"
    )


def controls_visible_to(user: Any) -> QuerySet[DerControl]:
    return DerControl.objects.filter(program__organization__in=organizations_visible_to(user)).select_related(
        "program", "program__organization"
    )


def responses_visible_to(user: Any) -> QuerySet[DerControlResponse]:
    return DerControlResponse.objects.filter(
        end_device__gateway__organization__in=organizations_visible_to(user)
    ).select_related("end_device", "end_device__gateway", "control")


def end_devices_visible_to(user: Any) -> QuerySet[EndDevice]:
    return EndDevice.objects.filter(gateway__organization__in=organizations_visible_to(user)).select_related("gateway")


def mirror_series(device: EndDevice, *, limit: int = 500) -> list[dict[str, Any]]:
    """Each mirrored quantity of a device with its latest readings (oldest first), for charts."""
    series = []
    for meter in MirrorMeterReading.objects.filter(mirror_usage_point__end_device=device).order_by("description"):
        rows = list(Reading.objects.filter(meter_reading=meter).order_by("-time", "-id")[:limit])
        rows.reverse()
        scale = 10.0**meter.power_of_ten
        series.append(
            {
                "description": meter.description or meter.mrid,
                "uom": meter.uom,
                "points": [{"t": r.time, "v": r.value * scale} for r in rows],
            }
        )
    return series
