"""Extension point for the gateway page: other apps add panels (certificates, alarms, deployments).

An app registers a function in its AppConfig.ready():

    register_gateway_panel(lambda request, gateway: ("pki/_gateway_panel.html", {"certificates": ...}))

The function returns (template, context) or None to show nothing; the template gets `panel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from .models import Gateway

GatewayPanel = Callable[[HttpRequest, Gateway], tuple[str, dict[str, Any]] | None]

_gateway_panels: list[GatewayPanel] = []


def register_gateway_panel(panel: GatewayPanel) -> GatewayPanel:
    if panel not in _gateway_panels:
        _gateway_panels.append(panel)
    return panel


def gateway_panels(request: HttpRequest, gateway: Gateway) -> list[tuple[str, dict[str, Any]]]:
    return [rendered for panel in _gateway_panels if (rendered := panel(request, gateway)) is not None]
