"""Web UI: artifacts (list, upload, detail) and the repository's signing status."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import user_can
from fleet.audit.services import request_ip
from fleet.inventory.selectors import gateways_visible_to

from . import selectors, services
from .errors import FirmwareError
from .forms import ArtifactUploadForm, ConfigBuildForm, LicenseForm
from .repo import get_repository


class ArtifactListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        rows = selectors.artifacts_visible_to(request.user).order_by("-created")
        page = Paginator(rows, 50).get_page(request.GET.get("page"))
        return TemplateResponse(request, "firmware/artifact_list.html", {"page": page})


class ArtifactUploadView(CapabilityRequiredMixin, View):
    read_capability = Capability.MANAGE_ARTIFACTS

    def _form(self, request: HttpRequest) -> ArtifactUploadForm:
        organizations = selectors.organizations_for_artifacts(request.user)
        if request.method == "POST":
            return ArtifactUploadForm(request.POST, request.FILES, organizations=organizations)
        return ArtifactUploadForm(organizations=organizations)

    def get(self, request: HttpRequest) -> HttpResponse:
        return TemplateResponse(request, "firmware/artifact_upload.html", {"form": self._form(request)})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = self._form(request)
        if form.is_valid():
            data = form.cleaned_data
            try:
                artifact = services.upload_artifact(
                    organization=data["organization"],
                    type=data["type"],
                    name=data["name"],
                    version=data["version"],
                    fileobj=data["file"].file,
                    hardware_models=data["hardware_models"],
                    release_notes=data["release_notes"],
                    declared_sha256=data["sha256"] or None,
                    actor=request.user,
                    ip=request_ip(request),
                )
            except FirmwareError as e:
                form.add_error(None, f"Upload refused: {e}")
            else:
                messages.success(request, f"Uploaded {artifact}.")
                return HttpResponseRedirect(reverse("artifact-detail", args=[artifact.pk]))
        return TemplateResponse(request, "firmware/artifact_upload.html", {"form": form}, status=400)


class ArtifactDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        artifact = get_object_or_404(selectors.artifacts_visible_to(request.user), pk=pk)
        assigned = selectors.assignments_visible_to(request.user).filter(artifact=artifact).count()
        return TemplateResponse(request, "firmware/artifact_detail.html", {"artifact": artifact, "assigned": assigned})


class RepositoryView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return TemplateResponse(request, "firmware/repository.html", {"status": get_repository().status()})


def gateway_updates_panel(request: HttpRequest, gateway: Any) -> tuple[str, dict[str, Any]] | None:
    """The updates section of the gateway page: what it must run, its newest device bundles and,
    for those who may change it, forms to build a config bundle or issue a license."""
    assignments = selectors.assignments_visible_to(request.user).filter(gateway=gateway).order_by("artifact_type")
    bundles = selectors.device_bundles_visible_to(request.user).filter(gateway=gateway).exclude(kind="assignment")
    can_change = user_can(request.user, Capability.MANAGE_DEPLOYMENTS, gateway.organization)
    templates = selectors.config_templates_visible_to(request.user).filter(organization=gateway.organization)
    return "firmware/_gateway_panel.html", {
        "gateway": gateway,
        "assignments": assignments,
        "bundles": bundles.order_by("-created")[:10],
        "config_form": ConfigBuildForm(templates=templates) if can_change and templates.exists() else None,
        "license_form": LicenseForm() if can_change else None,
    }


class GatewayBundleView(CapabilityRequiredMixin, View):
    """POST a config build or a license issue from the gateway page, then return to it."""

    read_capability = Capability.MANAGE_DEPLOYMENTS  # the forms of those who build bundles

    kind: str = "config"

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        gateway = get_object_or_404(gateways_visible_to(request.user), pk=pk)
        try:
            bundle = self.build(request, gateway)
        except (FirmwareError, ValidationError) as e:
            messages.error(request, f"Not built: {e}")
        else:
            messages.success(request, f"Built {bundle.filename}; it is published to the gateway.")
        return HttpResponseRedirect(reverse("gateway-detail", args=[gateway.pk]))

    def build(self, request: HttpRequest, gateway: Any) -> Any:
        if self.kind == "config":
            templates = selectors.config_templates_visible_to(request.user).filter(organization=gateway.organization)
            form: forms.Form = ConfigBuildForm(request.POST, templates=templates)
            if not form.is_valid():
                raise ValidationError(form.errors.as_text())
            return services.build_config(
                gateway=gateway, template=form.cleaned_data["template"], actor=request.user, ip=request_ip(request)
            )
        form = LicenseForm(request.POST)
        if not form.is_valid():
            raise ValidationError(form.errors.as_text())
        data = form.cleaned_data
        return services.issue_license(
            gateway=gateway,
            limits={"field_devices": data["field_devices"]},
            features=data["features"],
            valid_days=data["valid_days"],
            actor=request.user,
            ip=request_ip(request),
        )
