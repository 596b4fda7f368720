"""Web UI of deployments, mounted at /deployments/."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views import View

from firmware.selectors import artifacts_visible_to, unreleased
from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_visible_to
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError, PermissionDeniedError
from fleet.inventory.selectors import gateways_visible_to, groups_visible_to

from . import selectors, services
from .forms import DeploymentForm
from .models import ActionState, Deployment


class DeploymentListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        rows = selectors.deployments_visible_to(request.user)
        if status := request.GET.get("status"):
            rows = rows.filter(status=status)
        page = Paginator(rows, 50).get_page(request.GET.get("page"))
        can_create = selectors.organizations_for_deployments(request.user).exists()
        return TemplateResponse(
            request,
            "deployments/deployment_list.html",
            {
                "page": page,
                "statuses": Deployment.Status.choices,
                "can_create": can_create,
            },
        )


class DeploymentCreateView(CapabilityRequiredMixin, View):
    read_capability = Capability.MANAGE_DEPLOYMENTS

    def _form(self, request: HttpRequest) -> DeploymentForm:
        user = request.user
        return DeploymentForm(
            request.POST if request.method == "POST" else None,
            organizations=organizations_visible_to(user),
            artifacts=artifacts_visible_to(user),
            groups=groups_visible_to(user),
            gateways=gateways_visible_to(user),
        )

    def get(self, request: HttpRequest) -> HttpResponse:
        return TemplateResponse(request, "deployments/deployment_form.html", {"form": self._form(request)})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = self._form(request)
        if form.is_valid():
            req = form.to_request()
            try:
                deployment = services.create_deployment(
                    organization=req.organization,
                    name=req.name,
                    artifacts=req.artifacts,
                    target=req.target,
                    plan=req.plan,
                    include_new_gateways=req.include_new_gateways,
                    actor=request.user,
                    now=timezone.now(),
                    ip=request_ip(request),
                )
            except PermissionDeniedError:
                raise  # a refusal by role is a 403 page, not a message
            except DomainError as e:
                form.add_error(None, e.message)
            else:
                messages.success(request, f"Deployment {deployment} started.")
                for artifact in unreleased(req.artifacts):
                    messages.warning(request, unreleased_warning(artifact))
                return HttpResponseRedirect(reverse("deployment-detail", args=[deployment.pk]))
        return TemplateResponse(request, "deployments/deployment_form.html", {"form": form}, status=400)


def unreleased_warning(artifact: Any) -> str:
    return (
        f"{artifact} is not signed into the firmware role yet: the deployment pauses at its first assignment "
        "until the release signature is imported (tuf_export, sign offline, tuf_import; docs/install.md)."
    )


class DeploymentPreviewView(DeploymentCreateView):
    """htmx: the create form posts here on change and shows the gateways each phase would take."""

    def post(self, request: HttpRequest) -> HttpResponse:
        form = self._form(request)
        context: dict[str, Any] = {"form": form}
        if form.is_valid():
            req = form.to_request()
            try:
                context["preview"] = services.preview(
                    organization=req.organization,
                    artifacts=req.artifacts,
                    target=req.target,
                    plan=req.plan,
                    actor=request.user,
                )
                context["unreleased"] = [unreleased_warning(a) for a in unreleased(req.artifacts)]
            except PermissionDeniedError:
                raise  # a refusal by role is a 403 page, not a message
            except DomainError as e:
                context["problem"] = e.message
        return TemplateResponse(request, "deployments/_preview.html", context)


class DeploymentDetailView(CapabilityRequiredMixin, View):
    template = "deployments/deployment_detail.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        deployment = get_object_or_404(selectors.deployments_visible_to(request.user), pk=pk)
        actions = selectors.actions_visible_to(request.user).filter(deployment=deployment)
        if state := request.GET.get("state"):
            actions = actions.filter(state=state)
        progress = selectors.progress(deployment)
        return TemplateResponse(
            request,
            self.template,
            {
                "deployment": deployment,
                "progress": progress,
                "phases": deployment.phases.all(),
                "page": Paginator(actions, 100).get_page(request.GET.get("page")),
                "states": ActionState.choices,
                "exclusions": deployment.exclusions.select_related("gateway")[:200],
                "can_operate": deployment.organization in selectors.organizations_for_deployments(request.user),
                "operations": selectors.available_operations(deployment, progress),
            },
        )


class DeploymentProgressView(DeploymentDetailView):
    """htmx polling target: the live progress block alone."""

    template = "deployments/_progress.html"


class DeploymentOperationView(CapabilityRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int, operation: str) -> HttpResponse:
        deployment = get_object_or_404(selectors.deployments_visible_to(request.user), pk=pk)
        try:
            result = services.operate(
                deployment=deployment,
                operation=operation,
                reason=request.POST.get("reason", ""),
                actor=request.user,
                now=timezone.now(),
                ip=request_ip(request),
            )
        except PermissionDeniedError:
            raise  # a refusal by role is a 403 page, not a message
        except DomainError as e:
            messages.error(request, f"{operation}: {e.message}")
            return HttpResponseRedirect(reverse("deployment-detail", args=[pk]))
        messages.success(request, f"{operation} done.")
        target = result.pk if isinstance(result, Deployment) and result.pk != pk else pk
        return HttpResponseRedirect(reverse("deployment-detail", args=[target]))


class GatewayActionView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        action = get_object_or_404(selectors.actions_visible_to(request.user), pk=pk)
        return TemplateResponse(
            request,
            "deployments/action_detail.html",
            {
                "action": action,
                "history": selectors.action_history(action),
            },
        )
