"""What the head-end learns from the uplink: each gateway's own account of its utility link."""

from __future__ import annotations

from typing import Any

from fleet.inventory.models import Gateway

from . import services

LINK_EVENT = "csip.link"  # sent by the agent's utility link on every change (docs/protocol/uplink.md 3.5)


def utility_link_reported(sender: Any, *, gateway: Gateway, events: list[Any], **kwargs: Any) -> None:
    reports = [e for e in events if e.name == LINK_EVENT and isinstance(e.data, dict)]
    if reports:
        latest = max(reports, key=lambda e: (e.ts, e.seq))
        services.record_link_state(
            gateway=gateway, state=str(latest.data.get("state", "")), detail=latest.data, now=latest.ts
        )
