"""Operator UI for gateway commands: the buttons of the gateway page's commands section (panels.py)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View

from fleet.accounts.permissions import CapabilityRequiredMixin
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError
from fleet.inventory.selectors import gateways_visible_to

from . import services
from .protocol import CommandName

# The commands that need no arguments from the operator, as offered on the gateway page.
BUTTON_COMMANDS = {
    CommandName.CHECK_UPDATES: "Check for updates now",
    CommandName.UPLOAD_LOGS: "Upload full logs",
    CommandName.REBOOT: "Reboot",
}


class GatewayCommandView(CapabilityRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        gateway = get_object_or_404(gateways_visible_to(request.user), pk=pk)
        name = request.POST.get("name", "")
        if name not in BUTTON_COMMANDS:
            messages.error(request, f"'{name}' cannot be sent from this page; use /api/uplink/commands/.")
        else:
            try:
                services.send_command(gateway=gateway, name=name, user=request.user, ip=request_ip(request))
            except DomainError as exc:
                # Every role sees the buttons; a refusal by role is said on the gateway page.
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{name} sent to {gateway.serial} (delivered when it is connected).")
        return HttpResponseRedirect(reverse("gateway-detail", args=[gateway.pk]))
