"""The sep2 resource tree the head-end serves to IEEE 2030.5 clients (under /sep2/).

Requests arrive through the mutual-TLS front end (`fleet.csip.headend`), which has already
verified the client certificate against the utility CA and passes it as `SSL_CLIENT_CERT` in the
WSGI environ (as Apache's mod_ssl does). The LFDI of that certificate must belong to a
pre-registered EndDevice: an unknown one gets 403, as does a request with no certificate (the
plain HTTP server never sets the key, and a header cannot: headers become `HTTP_*`).
Bodies are checked against the sep2 XSD; anything else gets 400 and changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from fleet.audit.services import request_ip
from pki import ca

from . import selectors, sep, services
from .models import DerControl, DerProgram, DerResourceReport, EndDevice, MirrorUsagePoint

View = Callable[..., HttpResponse]


def xml_response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type=sep.CONTENT_TYPE)


def created(location: str, status: int = 201) -> HttpResponse:
    response = HttpResponse(status=status)
    response["Location"] = location
    return response


def _refused(request: HttpRequest, status: int, reason: str, lfdi: str | None = None) -> HttpResponse:
    services.refuse(reason=reason, path=request.path, lfdi=lfdi, ip=request_ip(request), status=status)
    return HttpResponse(reason, status=status, content_type="text/plain")


def sep2_client(methods: tuple[str, ...]) -> Callable[[View], View]:
    """Authenticate the client certificate's LFDI, allow `methods`, turn bad documents into 400."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            pem = request.META.get("SSL_CLIENT_CERT")
            if not pem:
                return _refused(request, 403, "no client certificate: IEEE 2030.5 requires mutual TLS")
            lfdi = ca.lfdi(ca.load_certificate(pem)).upper()
            device = selectors.end_device_by_lfdi(lfdi)
            if device is None or not device.enabled:
                return _refused(request, 403, "no EndDevice is registered for this LFDI", lfdi)
            if request.method not in methods:
                response = HttpResponse(status=405)
                response["Allow"] = ", ".join(methods)
                return response
            now = timezone.now()
            services.note_contact(device=device, now=now)
            try:
                return view(request, device, now, *args, **kwargs)
            except sep.InvalidDocument as exc:
                return _refused(request, 400, str(exc), lfdi)

        return wrapper

    return decorate


def _own(device: EndDevice, pk: int) -> EndDevice:
    """A client may read only its own EndDevice and what hangs below it (403 otherwise)."""
    if device.pk != pk:
        raise PermissionDenied("another device's resource")
    return device


def poll_rate() -> int:
    return int(settings.GRIDFLEET_CSIP_POLL_RATE)


@sep2_client(("GET",))
def dcap(request: HttpRequest, device: EndDevice, now: Any) -> HttpResponse:
    return xml_response(sep.device_capability(poll_rate=poll_rate()))


@sep2_client(("GET",))
def time(request: HttpRequest, device: EndDevice, now: Any) -> HttpResponse:
    return xml_response(sep.time_resource(now=now, poll_rate=poll_rate()))


@sep2_client(("GET", "POST"))
def end_device_list(request: HttpRequest, device: EndDevice, now: Any) -> HttpResponse:
    if request.method == "POST":
        # In-band registration of the caller itself: EndDevices are pre-registered from the
        # inventory, so this finds the existing one (IEEE 2030.5 5.5.2.1: Location of the resource).
        from py20305.models.sep import sep as S

        document = sep.parse(request.body, S.EndDevice)
        if document.s_fdi.value != device.sfdi or (document.l_fdi and document.l_fdi.hex().upper() != device.lfdi):
            return _refused(request, 400, "the EndDevice posted is not the client's own", device.lfdi)
        return created(sep.edev_path(device), status=201)
    # A client sees only its own EndDevice.
    return xml_response(
        sep.end_device_list([device], post_rate=settings.GRIDFLEET_CSIP_POST_RATE, poll_rate=poll_rate())
    )


@sep2_client(("GET",))
def end_device(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    _own(device, pk)
    return xml_response(sep.end_device(device, post_rate=settings.GRIDFLEET_CSIP_POST_RATE))


@sep2_client(("GET",))
def registration(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    _own(device, pk)
    return xml_response(sep.registration(device, poll_rate=poll_rate()))


@sep2_client(("GET",))
def function_set_assignments(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    _own(device, pk)
    programs = selectors.programs_for(device)
    return xml_response(sep.function_set_assignments_list(device, programs=len(programs), poll_rate=poll_rate()))


@sep2_client(("GET",))
def program_list(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    _own(device, pk)
    programs = selectors.programs_for(device)
    counted = [(p, len(selectors.current_controls(p, now=now))) for p in programs]
    return xml_response(sep.program_list(device, counted, poll_rate=poll_rate()))


def _program(device: EndDevice, pk: int) -> DerProgram:
    for program in selectors.programs_for(device):
        if program.pk == pk:
            return program
    raise PermissionDenied("this program is not offered to this device")


@sep2_client(("GET",))
def program(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    found = _program(device, pk)
    return xml_response(sep.program(found, controls=len(selectors.current_controls(found, now=now))))


@sep2_client(("GET",))
def default_control(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    found = _program(device, pk)
    if found.default_max_lim_pct is None:
        return HttpResponse(status=404)
    return xml_response(sep.default_control(found, now=now))


@sep2_client(("GET",))
def control_list(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    found = _program(device, pk)
    controls = [(c, selectors.control_status(c, now=now)) for c in selectors.current_controls(found, now=now)]
    return xml_response(sep.control_list(found, controls, poll_rate=poll_rate()))


@sep2_client(("GET",))
def control(request: HttpRequest, device: EndDevice, now: Any, pk: int, control_pk: int) -> HttpResponse:
    found = get_object_or_404(DerControl, pk=control_pk, program=_program(device, pk))
    return xml_response(sep.control(found, status=selectors.control_status(found, now=now)))


@sep2_client(("POST",))
def responses(request: HttpRequest, device: EndDevice, now: Any, set_pk: int) -> HttpResponse:
    if set_pk != sep.RESPONSE_SET:
        return HttpResponse(status=404)
    response = services.record_response(device=device, body=request.body, now=now)
    return created(f"{sep.response_list_path()}/{response.pk}")


@sep2_client(("GET",))
def der_list(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    _own(device, pk)
    return xml_response(sep.der_list(device, poll_rate=poll_rate()))


@sep2_client(("GET", "PUT"))
def der_resource(request: HttpRequest, device: EndDevice, now: Any, pk: int, kind: str) -> HttpResponse:
    _own(device, pk)
    if kind not in DerResourceReport.Kind.values:
        return HttpResponse(status=404)
    if request.method == "PUT":
        services.store_der_resource(device=device, kind=kind, body=request.body, now=now)
        return HttpResponse(status=204)
    report = device.der_resources.filter(kind=kind).first()
    if report is None:
        return HttpResponse(status=404)
    return xml_response(report.document.encode())


@sep2_client(("POST",))
def log_events(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    _own(device, pk)
    event = services.store_log_event(device=device, body=request.body, now=now)
    return created(f"{sep.edev_path(device)}/lel/{event.pk}")


@sep2_client(("GET", "POST"))
def mirror_usage_points(request: HttpRequest, device: EndDevice, now: Any) -> HttpResponse:
    if request.method == "POST":
        mup, was_created = services.store_mirror_usage_point(device=device, body=request.body, now=now)
        # 201 for a new MirrorUsagePoint; 204 with its Location when the mRID exists already.
        return created(sep.mup_path(mup), status=201 if was_created else 204)
    mups = list(device.mirror_usage_points.order_by("pk"))
    return xml_response(sep.mirror_usage_point_list(mups, poll_rate=poll_rate()))


@sep2_client(("GET", "POST"))
def mirror_usage_point(request: HttpRequest, device: EndDevice, now: Any, pk: int) -> HttpResponse:
    mup = get_object_or_404(MirrorUsagePoint, pk=pk)
    if mup.end_device_id != device.pk:
        # IEEE 2030.5-2023 10.11.3 rule e: only the LFDI that created a MUP may post to it.
        return _refused(request, 403, "this MirrorUsagePoint belongs to another device", device.lfdi)
    if request.method == "POST":
        services.store_readings(mup=mup, body=request.body, now=now)
        return HttpResponse(status=204)
    from py20305.xml.serialization import to_xml

    return xml_response(to_xml(sep.mirror_usage_point(mup)))
