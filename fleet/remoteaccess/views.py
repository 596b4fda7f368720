"""Operator UI of remote access: sessions list and page (terminal, playback), opening from the
gateway page (panels.py), approving and closing. Each view parses, calls one service, renders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import user_can
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError
from fleet.inventory.selectors import gateways_visible_to

from . import selectors, services
from .models import MaintenanceSession
from .recording import recording_path

DEFAULT_MINUTES = 60


class SessionListView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        sessions = selectors.sessions_visible_to(request.user)[:200]
        return render(request, "remoteaccess/session_list.html", {"sessions": sessions})


class SessionDetailView(CapabilityRequiredMixin, View):
    def get(self, request: HttpRequest, pk: str) -> HttpResponse:
        session = get_object_or_404(
            selectors.sessions_visible_to(request.user).prefetch_related("connection_log"), pk=pk
        )
        organization = session.gateway.organization
        live = session.state in (MaintenanceSession.State.OPENING, MaintenanceSession.State.ACTIVE)
        context: dict[str, Any] = {
            "session": session,
            "terminal": session.kind == MaintenanceSession.Kind.TERMINAL
            and live
            and session.technician_joined_at is None
            and session.requested_by_id == request.user.pk,
            "may_approve": session.state == MaintenanceSession.State.AWAITING_APPROVAL
            and session.requested_by_id != request.user.pk
            and user_can(request.user, Capability.APPROVE_REMOTE_SESSION, organization),
            "may_close": session.is_live
            and (
                session.requested_by_id == request.user.pk
                or user_can(request.user, Capability.APPROVE_REMOTE_SESSION, organization)
            ),
            "recording": bool(session.recording) and recording_path(session.recording).exists(),
        }
        return render(request, "remoteaccess/session_detail.html", context)


class SessionActionView(CapabilityRequiredMixin, View):
    def post(self, request: HttpRequest, pk: str, action: str) -> HttpResponse:
        session = get_object_or_404(selectors.sessions_visible_to(request.user), pk=pk)
        act = {"approve": services.approve_session, "close": services.close_session}.get(action)
        if act is None:
            messages.error(request, f"Unknown action '{action}'.")
        else:
            try:
                act(session=session, user=request.user, ip=request_ip(request))
            except DomainError as exc:
                messages.error(request, exc.message)
            except PermissionDenied as exc:
                messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("remoteaccess-session", args=[session.pk]))


class OpenSessionView(CapabilityRequiredMixin, View):
    """The gateway page's form: a target from the gateway's allow-list, a reason, a duration."""

    capability = Capability.OPEN_REMOTE_SESSION

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        gateway = get_object_or_404(gateways_visible_to(request.user), pk=pk)
        kind, _, target = request.POST.get("target", "").partition(" ")
        minutes = request.POST.get("minutes", "")
        try:
            session = services.open_session(
                gateway=gateway,
                user=request.user,
                kind=kind,
                target=target,
                reason=request.POST.get("reason", ""),
                duration=timedelta(minutes=int(minutes)) if minutes.isdigit() else None,
                ip=request_ip(request),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
        else:
            return HttpResponseRedirect(reverse("remoteaccess-session", args=[session.pk]))
        return HttpResponseRedirect(reverse("gateway-detail", args=[gateway.pk]))
