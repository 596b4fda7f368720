"""Web UI for the inventory: dashboard, gateways, sites and groups. Server-rendered, htmx for partials."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_visible_to
from fleet.audit.selectors import audit_entries_visible_to
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError, PermissionDeniedError
from fleet.core.navigation import url_if_installed

from . import csv_io, selectors, services
from .filtersets import GatewayFilterSet, SiteFilterSet
from .models import Gateway, Organization
from .panels import gateway_panels


def _page(request: HttpRequest, rows: Any, per_page: int = 50) -> Any:
    return Paginator(rows, per_page).get_page(request.GET.get("page"))


class DashboardView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        gateways = selectors.gateways_visible_to(request.user)
        online_cutoff = timezone.now() - settings.GATEWAY_OFFLINE_AFTER
        return TemplateResponse(
            request,
            "inventory/dashboard.html",
            {
                "counts": selectors.gateway_counts_by_status(request.user),
                "total": gateways.count(),
                "online_cutoff": online_cutoff,
                "online": gateways.filter(last_seen__gte=online_cutoff).count(),
                "recently_seen": gateways.exclude(last_seen=None).order_by("-last_seen")[:10],
                "site_count": selectors.sites_visible_to(request.user).count(),
                "open_alarms_url": url_if_installed("alarm-summary"),
            },
        )


class GatewayListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        # The utility-link state column (fleet/csip) in one query with the rest.
        gateways = selectors.gateways_visible_to(request.user).select_related("csip_end_device")
        filterset = GatewayFilterSet(request.GET, queryset=gateways)
        rows = filterset.qs if filterset.is_valid() else Gateway.objects.none()
        template = "inventory/_gateway_table.html" if request.htmx else "inventory/gateway_list.html"  # type: ignore[attr-defined]
        context = {"filter": filterset, "page": _page(request, rows.order_by("serial"))}
        return TemplateResponse(request, template, context)


class GatewayDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        gateway = get_object_or_404(selectors.gateways_visible_to(request.user), pk=pk)
        return TemplateResponse(
            request,
            "inventory/gateway_detail.html",
            {
                "gateway": gateway,
                "field_devices": gateway.field_devices.all(),
                "panels": gateway_panels(request, gateway),
                "attribute_changes": gateway.attribute_changes.all()[:20],
                "groups": [
                    g
                    for g in selectors.groups_visible_to(request.user).filter(organization=gateway.organization)
                    if selectors.group_members(g).filter(pk=gateway.pk).exists()
                ],
                "audit": audit_entries_visible_to(request.user).filter(
                    target_type="inventory.gateway", target_id=str(gateway.pk)
                )[:20],
            },
        )


class SiteListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        filterset = SiteFilterSet(request.GET, queryset=selectors.sites_visible_to(request.user))
        return TemplateResponse(
            request, "inventory/site_list.html", {"filter": filterset, "page": _page(request, filterset.qs)}
        )


class SiteDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        site = get_object_or_404(selectors.sites_visible_to(request.user), pk=pk)
        return TemplateResponse(request, "inventory/site_detail.html", {"site": site, "gateways": site.gateways.all()})


class GroupListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        groups = selectors.groups_visible_to(request.user)
        return TemplateResponse(
            request,
            "inventory/group_list.html",
            {
                "groups": [(group, selectors.group_members(group).count()) for group in groups],
            },
        )


class GroupDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        group = get_object_or_404(selectors.groups_visible_to(request.user), pk=pk)
        return TemplateResponse(
            request,
            "inventory/group_detail.html",
            {"group": group, "page": _page(request, selectors.group_members(group))},
        )


class InventoryImportView(CapabilityRequiredMixin, View):
    """Upload a CSV of sites or gateways; all rows are checked and one bad row imports nothing."""

    read_capability = Capability.MANAGE_INVENTORY

    def get(self, request: HttpRequest, kind: str) -> HttpResponse:
        return TemplateResponse(request, "inventory/import.html", {"kind": kind, "columns": csv_io.COLUMNS[kind]})

    def post(self, request: HttpRequest, kind: str) -> HttpResponse:
        upload = request.FILES.get("file")
        context: dict[str, Any] = {"kind": kind, "columns": csv_io.COLUMNS[kind]}
        if upload is None:
            context["errors"] = [csv_io.RowError(0, "file", "Choose a CSV file to upload.")]
            return TemplateResponse(request, "inventory/import.html", context, status=400)
        try:
            result = services.import_csv(
                kind=kind, text=upload.read().decode("utf-8"), user=request.user, ip=request_ip(request)
            )
        except UnicodeDecodeError:
            context["errors"] = [csv_io.RowError(0, "file", "The file is not UTF-8 text.")]
            return TemplateResponse(request, "inventory/import.html", context, status=400)
        except csv_io.CsvFormatError as exc:
            context["errors"] = exc.errors
            return TemplateResponse(request, "inventory/import.html", context, status=400)
        messages.success(request, f"Imported {result.created} {kind}.")
        return HttpResponseRedirect(reverse("gateway-list" if kind == "gateways" else "site-list"))


class InventoryExportView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, kind: str) -> HttpResponse:
        if kind == "gateways":
            rows: Any = GatewayFilterSet(request.GET, queryset=selectors.gateways_visible_to(request.user)).qs
        else:
            rows = selectors.sites_visible_to(request.user)
        return csv_io.export_response(kind, rows)


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(
        max_length=100, help_text="Short name used in URLs and TUF target paths, e.g. sunrise-solar."
    )
    kind = forms.ChoiceField(choices=Organization.Kind.choices, initial=Organization.Kind.UTILITY)


class FirstRunView(LoginRequiredMixin, View):
    """Where a user who belongs to no organization lands instead of a bare 403: a superuser creates
    the first organization here and gets the next steps; anyone else is told whom to ask."""

    def _render(self, request: HttpRequest, form: OrganizationForm, status: int = 200) -> HttpResponse:
        context = {
            "form": form,
            "organizations": organizations_visible_to(request.user),
            "can_create": request.user.is_superuser,
        }
        return TemplateResponse(request, "inventory/first_run.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request, OrganizationForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                organization = services.create_organization(
                    **form.cleaned_data, actor=request.user, ip=request_ip(request)
                )
            except PermissionDeniedError:
                raise  # a refusal by role is a 403 page, not a message
            except DomainError as e:
                form.add_error(None, e.message)
            else:
                messages.success(request, f"Organization {organization.name} created.")
                return HttpResponseRedirect(reverse("first-run"))
        return self._render(request, form, status=400)
