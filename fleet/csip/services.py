"""State changes of the CSIP head-end: EndDevice registration, programs and controls from operators,
and what devices post (responses, mirror readings, DER resources, log events). Keyword-only, one
transaction each, audited; operator actions check the actor's capability here."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography import x509
from django.db import transaction

from fleet.accounts.authorization import authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record, snapshot
from fleet.inventory.models import Gateway, GatewayGroup, Organization, Site
from pki import ca

from . import sep
from .errors import InvalidControlError
from .models import (
    DerControl,
    DerControlResponse,
    DerProgram,
    DerResourceReport,
    EndDevice,
    LogEvent,
    MirrorMeterReading,
    MirrorUsagePoint,
    Reading,
)
from .utility_pki import UtilityPki, issue_client_certificate

logger = logging.getLogger(__name__)

MAX_EVENT_SECONDS = 24 * 3600
MAX_PERCENT = 100
MAX_RANDOMIZE_SECONDS = 3600  # OneHourRangeType


def registration_pin(lfdi: str) -> int:
    """A stable 5-digit PIN derived from the LFDI, plus the sep2 check digit (6 digits)."""
    five = f"{int(hashlib.sha256(lfdi.upper().encode()).hexdigest(), 16) % 100000:05d}"
    return int(five + ca.check_digit(five))


# --- EndDevices -------------------------------------------------------------------------------


@transaction.atomic
def register_end_device(
    *, gateway: Gateway, certificate: x509.Certificate, now: datetime, pin: int | None = None
) -> EndDevice:
    """Pre-register (or re-key) the gateway's EndDevice from its utility-link certificate."""
    lfdi = ca.lfdi(certificate).upper()
    sfdi = int(ca.sfdi_from_lfdi(lfdi.lower()))
    device = EndDevice.objects.filter(gateway=gateway).first()
    before = snapshot(device) if device is not None else None
    if device is None:
        device = EndDevice(gateway=gateway, registered_at=now)
    device.lfdi, device.sfdi = lfdi, sfdi
    device.pin = pin if pin is not None else registration_pin(lfdi)
    device.changed_at = now
    device.save()
    record(
        action="csip.end_device.registered",
        target=device,
        gateway=gateway,
        before=before,
        after=snapshot(device),
    )
    return device


def issue_utility_certificate(
    *, gateway: Gateway, csr_pem: str, pki: UtilityPki, now: datetime, days: int
) -> tuple[x509.Certificate, EndDevice]:
    """Sign the gateway's utility-link CSR with the test utility CA and pre-register its EndDevice.

    Raises pki.errors.InvalidCSRError / SerialMismatchError (the identity protocol's refusals) for a bad CSR."""
    certificate = issue_client_certificate(pki, csr_pem=csr_pem, serial=gateway.serial, now=now, days=days)
    return certificate, register_end_device(gateway=gateway, certificate=certificate, now=now)


@transaction.atomic
def note_contact(*, device: EndDevice, now: datetime) -> None:
    EndDevice.objects.filter(pk=device.pk).update(last_contact=now)


@transaction.atomic
def record_link_state(*, gateway: Gateway, state: str, detail: dict[str, Any], now: datetime) -> None:
    """What the gateway's agent reports about its utility link (uplink `csip` record)."""
    EndDevice.objects.filter(gateway=gateway).update(link_state=state[:32], link_detail=detail, link_reported_at=now)


def refuse(*, reason: str, path: str, lfdi: str | None, ip: str | None, status: int) -> None:
    """Log and audit a refused head-end request; called outside the refused work's transaction."""
    logger.warning("CSIP head-end refused %s %s (LFDI %s): %s", status, path, lfdi or "-", reason)
    record(
        action="csip.request.refused", ip=ip, detail={"path": path, "lfdi": lfdi, "status": status, "reason": reason}
    )


# --- programs and controls (operators) ----------------------------------------------------------


@transaction.atomic
def create_program(
    *,
    organization: Organization,
    name: str,
    user: Any,
    primacy: int = 10,
    site: Site | None = None,
    group: GatewayGroup | None = None,
    default_max_lim_pct: Decimal | None = None,
    ip: str | None = None,
) -> DerProgram:
    authorize(user, Capability.DISPATCH_DER, organization)
    if site is not None and group is not None:
        raise InvalidControlError("A program covers a site or a group, not both.", field="group")
    for scope in (site, group):
        if scope is not None and scope.organization_id != organization.pk:
            raise InvalidControlError(
                f"{scope} belongs to another organization.", field="site" if scope is site else "group"
            )
    if default_max_lim_pct is not None and not 0 <= default_max_lim_pct <= MAX_PERCENT:
        raise InvalidControlError("The default limit is a percentage 0..100.", field="default_max_lim_pct")
    if DerProgram.objects.filter(organization=organization, name=name).exists():
        raise InvalidControlError(f"A program named {name!r} exists already.", field="name")
    program = DerProgram.objects.create(
        organization=organization,
        name=name,
        primacy=primacy,
        site=site,
        group=group,
        default_max_lim_pct=default_max_lim_pct,
    )
    record(action="csip.program.created", target=program, user=user, after=snapshot(program), ip=ip)
    return program


@transaction.atomic
def create_control(
    *,
    program: DerProgram,
    start: datetime,
    duration_s: int,
    user: Any,
    now: datetime,
    export_limit_w: int | None = None,
    max_lim_pct: Decimal | None = None,
    connect: bool | None = None,
    power_factor: Decimal | None = None,
    power_factor_absorbing: bool = False,
    randomize_start_s: int = 0,
    randomize_duration_s: int = 0,
    description: str = "",
    ip: str | None = None,
) -> DerControl:
    """Schedule a DER event: an export limit (W), an active power limit (% of WMax), connect or
    disconnect, or a fixed power factor."""
    authorize(user, Capability.DISPATCH_DER, program.organization)
    if sum(v is not None for v in (export_limit_w, max_lim_pct, connect, power_factor)) != 1:
        raise InvalidControlError(
            "Give exactly one setpoint: either an export limit in W, a power limit in %, connect, or a power factor.",
            field="export_limit_w",
        )
    if power_factor is not None and not 0 < power_factor <= 1:
        raise InvalidControlError("The power factor is > 0 and <= 1.", field="power_factor")
    if max_lim_pct is not None and not 0 <= max_lim_pct <= MAX_PERCENT:
        raise InvalidControlError("The power limit is a percentage 0..100.", field="max_lim_pct")
    if export_limit_w is not None and export_limit_w < 0:
        raise InvalidControlError("The export limit cannot be negative.", field="export_limit_w")
    if not 0 < duration_s <= MAX_EVENT_SECONDS:
        raise InvalidControlError("The duration is 1 s .. 24 h.", field="duration_s")
    if start + timedelta(seconds=duration_s) <= now:
        raise InvalidControlError("The event would be over before it reaches any device.", field="start")
    for field, value in (("randomize_start_s", randomize_start_s), ("randomize_duration_s", randomize_duration_s)):
        if abs(value) > MAX_RANDOMIZE_SECONDS:
            raise InvalidControlError("Randomization is at most one hour either way.", field=field)
    control = DerControl.objects.create(
        program=program,
        description=description[:32],
        creation_time=now,
        start=start,
        duration_s=duration_s,
        randomize_start_s=randomize_start_s,
        randomize_duration_s=randomize_duration_s,
        export_limit_w=export_limit_w,
        max_lim_pct=max_lim_pct,
        connect=connect,
        power_factor=power_factor,
        power_factor_absorbing=power_factor_absorbing,
        status_changed_at=now,
        created_by=getattr(user, "username", "") or "",
    )
    record(
        action="csip.control.created",
        target=control,
        user=user,
        organization=program.organization,
        after=snapshot(control),
        ip=ip,
    )
    return control


@transaction.atomic
def cancel_control(*, control: DerControl, user: Any, now: datetime, ip: str | None = None) -> DerControl:
    authorize(user, Capability.DISPATCH_DER, control.program.organization)
    if control.cancelled:
        raise InvalidControlError("This event is cancelled already.", code="already_cancelled")
    before = snapshot(control)
    control.cancelled, control.status_changed_at = True, now
    control.save(update_fields=["cancelled", "status_changed_at"])
    record(
        action="csip.control.cancelled",
        target=control,
        user=user,
        organization=control.program.organization,
        before=before,
        after=snapshot(control),
        ip=ip,
    )
    return control


# --- what devices post ----------------------------------------------------------------------------


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


@transaction.atomic
def record_response(*, device: EndDevice, body: bytes, now: datetime) -> DerControlResponse:
    """Store a DERControlResponse (or plain Response) in arrival order. Raises sep.InvalidDocument."""
    from py20305.models.sep import sep as S

    document = sep.parse(body, S.DercontrolResponse, S.Response)
    if document.end_device_lfdi.hex().upper() != device.lfdi:
        raise sep.InvalidDocument("endDeviceLFDI is not the LFDI of the client certificate")
    subject = document.subject.value.hex().upper()
    from .selectors import control_by_mrid

    response = DerControlResponse.objects.create(
        control=control_by_mrid(subject),
        subject_mrid=subject,
        end_device=device,
        status=document.status or 0,
        created_date_time=_dt(document.created_date_time.value),
        received_at=now,
    )
    return response


@transaction.atomic
def store_mirror_usage_point(*, device: EndDevice, body: bytes, now: datetime) -> tuple[MirrorUsagePoint, bool]:
    """POST /mup: create the device's MirrorUsagePoint, or find it again by mRID (and take its readings)."""
    from py20305.models.sep import sep as S

    document = sep.parse(body, S.MirrorUsagePoint)
    mrid = document.m_rid.value.hex().upper()
    mup, created = MirrorUsagePoint.objects.get_or_create(
        end_device=device,
        mrid=mrid,
        defaults={
            "description": (document.description or "")[:32],
            "role_flags": int.from_bytes(document.role_flags.value, "big"),
            "service_category_kind": document.service_category_kind.value,
            "device_lfdi": document.device_lfdi.hex().upper(),
            "post_rate": document.post_rate,
            "created": now,
        },
    )
    _store_readings(mup, sep.meters_of(document), now=now)
    return mup, created


@transaction.atomic
def store_readings(*, mup: MirrorUsagePoint, body: bytes, now: datetime) -> int:
    """POST /mup/{id}: MirrorMeterReading or MirrorMeterReadingList. Returns how many readings were kept."""
    from py20305.models.sep import sep as S

    document = sep.parse(body, S.MirrorMeterReadingList, S.MirrorMeterReading)
    return _store_readings(mup, sep.meters_of(document), now=now)


def _store_readings(mup: MirrorUsagePoint, meters: list[sep.MeterReadings], *, now: datetime) -> int:
    rows = []
    for found in meters:
        meter, created = MirrorMeterReading.objects.get_or_create(
            mirror_usage_point=mup, mrid=found.mrid, defaults={"description": found.description}
        )
        if found.uom is not None or created:
            # The ReadingType comes with the MUP POST; reading posts usually leave it out.
            meter.description = found.description or meter.description
            meter.uom, meter.power_of_ten = found.uom, found.power_of_ten or 0
            meter.flow_direction = found.flow_direction
            meter.save()
        rows += [
            Reading(meter_reading=meter, value=value, time=_dt(start or int(now.timestamp())), received_at=now)
            for value, start in found.readings
        ]
    Reading.objects.bulk_create(rows)
    return len(rows)


DER_RESOURCE_MODELS = {
    DerResourceReport.Kind.CAPABILITY: "Dercapability",
    DerResourceReport.Kind.SETTINGS: "Dersettings",
    DerResourceReport.Kind.STATUS: "Derstatus",
    DerResourceReport.Kind.AVAILABILITY: "Deravailability",
}


@transaction.atomic
def store_der_resource(*, device: EndDevice, kind: str, body: bytes, now: datetime) -> DerResourceReport:
    from py20305.models.sep import sep as S

    sep.parse(body, getattr(S, DER_RESOURCE_MODELS[DerResourceReport.Kind(kind)]))
    report, _ = DerResourceReport.objects.update_or_create(
        end_device=device, kind=kind, defaults={"document": body.decode(), "updated": now}
    )
    return report


@transaction.atomic
def store_log_event(*, device: EndDevice, body: bytes, now: datetime) -> LogEvent:
    from py20305.models.sep import sep as S

    document = sep.parse(body, S.LogEvent)
    return LogEvent.objects.create(
        end_device=device,
        log_event_code=document.log_event_code,
        log_event_id=document.log_event_id,
        function_set=document.function_set,
        profile_id=document.profile_id,
        created_date_time=_dt(document.created_date_time.value),
        details=(document.details or "")[:32],
        received_at=now,
    )
