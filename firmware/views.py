"""Web UI: artifacts (list, upload, detail) and the repository's signing status."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.audit.services import request_ip

from . import selectors, services
from .errors import FirmwareError
from .forms import ArtifactUploadForm
from .repo import get_repository


class ArtifactListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        rows = selectors.artifacts_visible_to(request.user).order_by("-created")
        page = Paginator(rows, 50).get_page(request.GET.get("page"))
        return TemplateResponse(request, "firmware/artifact_list.html", {"page": page})


class ArtifactUploadView(CapabilityRequiredMixin, View):
    capability = Capability.MANAGE_ARTIFACTS

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
    """The updates section of the gateway page: what it must run and its newest device bundles."""
    assignments = selectors.assignments_visible_to(request.user).filter(gateway=gateway).order_by("artifact_type")
    bundles = selectors.device_bundles_visible_to(request.user).filter(gateway=gateway).exclude(kind="assignment")
    return "firmware/_gateway_panel.html", {
        "gateway": gateway,
        "assignments": assignments,
        "bundles": bundles.order_by("-created")[:10],
    }
