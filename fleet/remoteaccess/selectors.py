"""Reading maintenance sessions; tenancy is decided here (organization roles), nowhere else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_where
from fleet.inventory.models import Gateway, Organization

from .models import MaintenanceSession, RemoteAccessPolicy


def sessions_visible_to(user: Any) -> QuerySet[MaintenanceSession]:
    return MaintenanceSession.objects.filter(
        gateway__organization__in=organizations_where(user, Capability.VIEW)
    ).select_related("gateway", "gateway__organization", "requested_by", "approved_by")


def policy_for(organization: Organization) -> RemoteAccessPolicy:
    """The organization's policy, or the defaults (unsaved) when it has none."""
    found = RemoteAccessPolicy.objects.filter(organization=organization).first()
    return found or RemoteAccessPolicy(organization=organization)


def reported_remote_access(gateway: Gateway) -> dict[str, Any]:
    """What the gateway last reported it allows (from its signed configuration and local switch).

    The gateway enforces its own allow-list again when asked; the server refuses early what the
    gateway would refuse, so the technician learns why before anything is dialled.
    """
    reported = (gateway.attributes or {}).get("remote_access")
    return reported if isinstance(reported, dict) else {}


def live_sessions(**filters: Any) -> QuerySet[MaintenanceSession]:
    return MaintenanceSession.objects.filter(state__in=MaintenanceSession.LIVE_STATES, **filters)


def session_deadline(session_id: Any) -> datetime | None:
    return MaintenanceSession.objects.filter(pk=session_id).values_list("expires_at", flat=True).first()
