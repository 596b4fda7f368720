"""Operator UI: the live alarm console, alarm detail, log viewer and search, telemetry pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import user_can
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError, PermissionDeniedError
from fleet.inventory.models import Gateway
from fleet.inventory.selectors import gateways_visible_to, sites_visible_to

from . import selectors, services
from .charts import line_chart
from .filtersets import AlarmFilterSet, LogEntryFilterSet
from .lifecycle import OPEN_STATES, AlarmState, Severity
from .models import LogLevel, TelemetryLatest

CONSOLE_SORTS = {
    "severity": ["severity_rank", "-last_raised_at"],
    "newest": ["-last_raised_at"],
    "oldest": ["last_raised_at"],
    "gateway": ["gateway__serial", "severity_rank"],
    "occurrences": ["-occurrences", "severity_rank"],
}
SHELVE_CHOICES = [(15, "15 minutes"), (60, "1 hour"), (240, "4 hours"), (480, "8 hours"), (1440, "24 hours")]
LOG_VIEW_LIMIT = 200


def _console_filters(request: HttpRequest) -> QueryDict:
    """Open alarms unless the operator chose otherwise."""
    data = request.GET.copy()
    if "open" not in data and "state" not in data:
        data["open"] = "true"
    return data


class AlarmConsoleView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        filterset = AlarmFilterSet(_console_filters(request), queryset=selectors.alarms_visible_to(request.user))
        sort = request.GET.get("sort", "severity")
        alarms = filterset.qs.order_by(*CONSOLE_SORTS.get(sort, CONSOLE_SORTS["severity"]))[:200]
        context = {
            "filter": filterset,
            "alarms": alarms,
            "sort": sort,
            "sorts": CONSOLE_SORTS,
            "severities": Severity.choices,
            "states": AlarmState.choices,
            "sites": sites_visible_to(request.user).order_by("name"),
            "now": timezone.now(),
            "shelve_choices": SHELVE_CHOICES,
            "can_triage": any(
                user_can(request.user, Capability.TRIAGE_ALARMS, org) for org in {a.organization for a in alarms}
            ),
        }
        partial = request.htmx or request.GET.get("partial")  # type: ignore[attr-defined]
        template = "monitoring/_alarm_table.html" if partial else "monitoring/alarm_console.html"
        return TemplateResponse(request, template, context)


class OpenAlarmSummaryView(CapabilityRequiredMixin, View):
    """The dashboard's "Open alarms" card content (htmx-polled): total and count by severity."""

    def get(self, request: HttpRequest) -> HttpResponse:
        counts = selectors.open_alarm_counts(request.user)
        by_severity = [(value, label, counts.get(value, 0)) for value, label in Severity.choices if counts.get(value)]
        return TemplateResponse(
            request, "monitoring/_open_alarm_summary.html", {"total": sum(counts.values()), "by_severity": by_severity}
        )


BULK_DONE = {"acknowledge": "Acknowledged", "shelve": "Shelved", "comment": "Commented on"}


class AlarmBulkActionView(CapabilityRequiredMixin, View):
    """The console's bulk form: acknowledge, shelve (with a duration) or comment on the selected alarms."""

    def post(self, request: HttpRequest) -> HttpResponse:
        back = HttpResponseRedirect(request.POST.get("next") or reverse("alarm-console"))
        ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
        action = request.POST.get("action", "acknowledge")
        if not ids:
            messages.warning(request, "Select the alarms first.")
            return back
        minutes = request.POST.get("duration_minutes", "")
        try:
            result = services.apply_to_alarms(
                alarms=selectors.alarms_visible_to(request.user).filter(pk__in=ids),
                action=action,
                user=request.user,
                comment=request.POST.get("comment", "").strip(),
                shelve_for=timedelta(minutes=int(minutes)) if minutes.isdigit() else None,
                ip=request_ip(request),
            )
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as exc:
            messages.error(request, exc.message)
            return back
        if result.done:
            messages.success(request, f"{BULK_DONE[action]} {len(result.done)} alarm(s).")
        for alarm_id, reason in result.refused.items():
            messages.warning(request, f"Alarm {alarm_id}: {reason}")
        return back


class AlarmDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        alarm = get_object_or_404(selectors.alarms_visible_to(request.user), pk=pk)
        return TemplateResponse(
            request,
            "monitoring/alarm_detail.html",
            {
                "alarm": alarm,
                "transitions": alarm.transitions.select_related("actor_user"),
                "logs": selectors.recent_logs(gateway=alarm.gateway, limit=50),
                "can_triage": user_can(request.user, Capability.TRIAGE_ALARMS, alarm.organization),
                "shelved": alarm.is_shelved(timezone.now()),
                "is_open": alarm.state in OPEN_STATES,
                "shelve_choices": SHELVE_CHOICES,
            },
        )


class AlarmActionView(CapabilityRequiredMixin, View):
    """POST /monitoring/alarms/<pk>/<action>/ from the detail page's buttons."""

    def post(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        alarm = get_object_or_404(selectors.alarms_visible_to(request.user), pk=pk)
        if action not in services.OPERATOR_ACTIONS:
            return HttpResponse(f"Unknown action '{action}'.", status=404)
        minutes = request.POST.get("duration_minutes", "").strip()
        if minutes and not minutes.isdigit():
            messages.error(request, "The shelving duration must be a whole number of minutes.")
            return HttpResponseRedirect(reverse("alarm-detail", args=[alarm.pk]))
        try:
            services.act_on_alarm(
                alarm=alarm,
                action=services.OPERATOR_ACTIONS[action],
                user=request.user,
                comment=request.POST.get("comment", ""),
                shelve_for=timedelta(minutes=int(minutes)) if minutes.isdigit() and int(minutes) else None,
                ip=request_ip(request),
            )
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{action.replace('_', ' ').capitalize()}: done.")
        return HttpResponseRedirect(reverse("alarm-detail", args=[alarm.pk]))


class LogSearchView(CapabilityRequiredMixin, View):
    """Fleet-wide log search or, with a gateway, its logs with a live tail over /ws/console/
    (newest first, the latest LOG_VIEW_LIMIT matches of the level/text/time filters)."""

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        rows = selectors.logs_visible_to(request.user)
        gateway = None
        if pk is not None:
            gateway = get_object_or_404(gateways_visible_to(request.user), pk=pk)
            rows = rows.filter(gateway=gateway)
        filterset = LogEntryFilterSet(request.GET, queryset=rows)
        return TemplateResponse(
            request,
            "monitoring/gateway_logs.html" if gateway else "monitoring/log_search.html",
            {
                "gateway": gateway,
                "filter": filterset,
                "entries": filterset.qs.order_by("-ts", "-id")[:LOG_VIEW_LIMIT],
                "limit": LOG_VIEW_LIMIT,
                "log_levels": LogLevel.choices,
            },
        )


class GatewayTelemetryView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        gateway = get_object_or_404(gateways_visible_to(request.user), pk=pk)
        return TemplateResponse(request, "monitoring/gateway_telemetry.html", telemetry_context(request, gateway))


def telemetry_context(request: HttpRequest, gateway: Gateway) -> dict[str, Any]:
    latest = list(TelemetryLatest.objects.filter(gateway=gateway).order_by("device", "point"))
    device = request.GET.get("device") or (latest[0].device if latest else "")
    point = request.GET.get("point") or next((r.point for r in latest if r.device == device and r.point == "W"), "")
    point = point or next((r.point for r in latest if r.device == device), "")
    try:
        hours = max(1, min(24 * 90, int(request.GET.get("hours", "24"))))
    except ValueError:
        hours = 24
    until = timezone.now()
    chart = bucket = None
    if device and point:
        bucket, series = selectors.telemetry_series(
            gateway=gateway,
            device=device,
            point=point,
            since=until - timedelta(hours=hours),
            until=until,
            max_points=400,
        )
        chart = line_chart(series)
    return {
        "gateway": gateway,
        "latest": latest,
        "device": device,
        "point": point,
        "hours": hours,
        "chart": chart,
        "bucket": bucket,
    }


def gateway_monitoring_panel(request: HttpRequest, gateway: Gateway) -> tuple[str, dict[str, Any]] | None:
    """The gateway page's monitoring section (registered with fleet.inventory.panels)."""
    alarms = selectors.alarms_visible_to(request.user).filter(gateway=gateway, state__in=OPEN_STATES)
    return "monitoring/_gateway_panel.html", {
        "gateway": gateway,
        "alarms": alarms.order_by(*CONSOLE_SORTS["severity"])[:20],
        **telemetry_context(request, gateway),
    }
