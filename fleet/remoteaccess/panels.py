"""The gateway page's remote access section (registered with fleet.inventory.panels in apps.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from fleet.accounts.roles import Capability
from fleet.accounts.selectors import user_can
from fleet.inventory.models import Gateway

from . import selectors


def target_choices(reported: dict[str, Any]) -> list[tuple[str, str]]:
    """(value, label) for each target the gateway says it allows; value is "<kind> <target>"."""
    choices = []
    for entry in reported.get("targets") or []:
        if entry.get("device"):
            text = f"{entry['device']}:{entry['port']}" if entry.get("port") else entry["device"]
            choices.append((f"tcp {text}", f"{text} (field device)"))
        elif entry.get("host"):
            text = f"{entry['host']}:{entry.get('port')}"
            choices.append((f"tcp {text}", text))
        elif entry.get("serial"):
            choices.append((f"serial {entry['serial']}", f"{entry['serial']} (serial port)"))
    if reported.get("terminal"):
        choices.append(("terminal ", "Terminal on the gateway"))
    return choices


def gateway_remote_access_panel(request: HttpRequest, gateway: Gateway) -> tuple[str, dict[str, Any]] | None:
    reported = selectors.reported_remote_access(gateway)
    may_open = user_can(request.user, Capability.OPEN_REMOTE_SESSION, gateway.organization)
    return "remoteaccess/_gateway_panel.html", {
        "gateway": gateway,
        "sessions": selectors.sessions_visible_to(request.user).filter(gateway=gateway)[:10],
        "choices": target_choices(reported) if may_open else [],
        "switched_off": reported.get("enabled") is False,
        "max_minutes": int(selectors.policy_for(gateway.organization).max_duration.total_seconds() // 60),
    }
