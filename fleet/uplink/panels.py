"""The gateway page's commands section (registered with fleet.inventory.panels in apps.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from fleet.inventory.models import Gateway

from .selectors import commands_visible_to
from .views import BUTTON_COMMANDS


def gateway_commands_panel(request: HttpRequest, gateway: Gateway) -> tuple[str, dict[str, Any]] | None:
    return "uplink/_gateway_panel.html", {
        "gateway": gateway,
        "commands": commands_visible_to(request.user).filter(gateway=gateway)[:10],
        "command_buttons": [(name.value, label) for name, label in BUTTON_COMMANDS.items()],
    }
