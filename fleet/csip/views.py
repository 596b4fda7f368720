"""Operator pages of the utility link: DER programs, controls, responses, mirror readings."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from fleet.inventory.models import Gateway

from .models import EndDevice


def gateway_csip_panel(request: HttpRequest, gateway: Gateway) -> tuple[str, dict[str, Any]] | None:
    device = EndDevice.objects.filter(gateway=gateway).first()
    if device is None:
        return None
    return "csip/_gateway_panel.html", {"device": device}
