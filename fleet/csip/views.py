"""Operator pages of the utility link: DER programs and their controls, per-device responses,
and the gateway page's panel (link state, active control, responses, mirrored readings)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_where
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError, PermissionDeniedError
from fleet.inventory.models import Gateway
from fleet.inventory.selectors import groups_visible_to, sites_visible_to
from fleet.monitoring.charts import line_chart
from fleet.monitoring.selectors import SeriesPoint

from . import selectors, services
from .forms import ControlForm, ProgramForm
from .models import DerControl, EndDevice
from .responses import response_label


def _program_form(request: HttpRequest, data: Any = None) -> ProgramForm:
    return ProgramForm(
        data,
        organizations=organizations_where(request.user, Capability.DISPATCH_DER),
        sites=sites_visible_to(request.user),
        groups=groups_visible_to(request.user),
    )


class ProgramListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, form: ProgramForm | None = None) -> HttpResponse:
        now = timezone.now()
        programs = selectors.programs_visible_to(request.user).prefetch_related("controls")
        rows = [
            {"program": p, "controls": [(c, selectors.control_status(c, now=now)) for c in p.controls.all()]}
            for p in programs
        ]
        context = {
            "rows": rows,
            "form": form or _program_form(request),
            "control_form": ControlForm(
                initial={"start": (now + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0)}
            ),
            "end_devices": selectors.end_devices_visible_to(request.user).order_by("gateway__serial"),
            "status_labels": dict(DerControl.Status.choices),
        }
        return TemplateResponse(request, "csip/program_list.html", context)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = _program_form(request, request.POST)
        if not form.is_valid():
            return self.get(request, form)
        try:
            program = services.create_program(**form.cleaned_data, user=request.user, ip=request_ip(request))
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as exc:
            form.add_error(getattr(exc, "field", None), exc.message)
            return self.get(request, form)
        messages.success(request, f"Program {program.name} created.")
        return HttpResponseRedirect(reverse("csip-programs"))


def control_setpoint(kind: str, value: Decimal | None) -> dict[str, Any]:
    """The create_control keyword for a form's kind; a missing value is refused by the service."""
    if kind == "disconnect":
        return {"connect": False}
    if kind in ("pf_inject", "pf_absorb"):
        return {"power_factor": value, "power_factor_absorbing": kind == "pf_absorb"}
    if kind == "export":
        return {"export_limit_w": int(value) if value is not None else None}
    return {"max_lim_pct": value}


class ControlCreateView(CapabilityRequiredMixin, View):
    read_capability = Capability.DISPATCH_DER

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        program = get_object_or_404(selectors.programs_visible_to(request.user), pk=pk)
        form = ControlForm(request.POST)
        if not form.is_valid():
            messages.error(request, form.errors.as_text())
            return HttpResponseRedirect(reverse("csip-programs"))
        data = form.cleaned_data
        setpoint = control_setpoint(data["kind"], data["value"])
        try:
            control = services.create_control(
                program=program,
                start=data["start"],
                duration_s=data["duration_minutes"] * 60,
                randomize_start_s=data["randomize_start_s"],
                randomize_duration_s=data["randomize_duration_s"],
                description=data["description"],
                user=request.user,
                now=timezone.now(),
                ip=request_ip(request),
                **setpoint,
            )
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(reverse("csip-programs"))
        messages.success(request, f"Scheduled: {control.setpoint_label} from {control.start:%Y-%m-%d %H:%M} UTC.")
        return HttpResponseRedirect(reverse("csip-control", args=[control.pk]))


class ControlDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        control = get_object_or_404(selectors.controls_visible_to(request.user), pk=pk)
        responses = selectors.responses_visible_to(request.user).filter(control=control)
        context = {
            "control": control,
            "status": DerControl.Status(selectors.control_status(control, now=timezone.now())).label,
            "responses": [(r, response_label(r.status)) for r in responses],
        }
        return TemplateResponse(request, "csip/control_detail.html", context)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        control = get_object_or_404(selectors.controls_visible_to(request.user), pk=pk)
        try:
            services.cancel_control(control=control, user=request.user, now=timezone.now(), ip=request_ip(request))
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Event cancelled; devices learn it at their next poll.")
        return HttpResponseRedirect(reverse("csip-control", args=[control.pk]))


def _charts(device: EndDevice) -> list[dict[str, Any]]:
    charts = []
    for series in selectors.mirror_series(device, limit=300):
        points = [SeriesPoint(ts=p["t"], avg=p["v"], min=p["v"], max=p["v"], count=1) for p in series["points"]]
        chart = line_chart(points, height=120)
        if chart is not None:
            charts.append({"description": series["description"], "chart": chart, "last": points[-1].avg})
    return charts


def gateway_csip_panel(request: HttpRequest, gateway: Gateway) -> tuple[str, dict[str, Any]] | None:
    device = EndDevice.objects.filter(gateway=gateway).first()
    if device is None:
        return None
    detail = device.link_detail or {}
    return "csip/_gateway_panel.html", {
        "device": device,
        "detail": detail,
        "agent_responses": [(r, response_label(int(r.get("status", 0)))) for r in detail.get("responses", [])][-5:],
        "responses": [
            (r, response_label(r.status))
            for r in device.responses.select_related("control").order_by("-received_at")[:10]
        ],
        "charts": _charts(device),
    }
