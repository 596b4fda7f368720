from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_where

from .models import AuditEntry


def audit_entries_visible_to(user: Any) -> QuerySet[AuditEntry]:
    """Entries of organizations where the user may read the audit trail, plus the user's own actions."""
    if getattr(user, "is_superuser", False):
        return AuditEntry.objects.all()
    if not getattr(user, "is_authenticated", False):
        return AuditEntry.objects.none()
    return AuditEntry.objects.filter(
        Q(organization__in=organizations_where(user, Capability.VIEW_AUDIT)) | Q(actor_user=user)
    )
