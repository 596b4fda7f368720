"""Tenancy: which organizations a user may see or act in. Every other selector builds on these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db.models import QuerySet

from .roles import Capability, roles_with

if TYPE_CHECKING:
    from fleet.inventory.models import Organization


def organizations_visible_to(user: Any) -> QuerySet[Organization]:
    return organizations_where(user, Capability.VIEW)


def _organizations() -> QuerySet[Organization]:
    # Organization belongs to inventory, a layer above accounts: reach it through the app registry,
    # as Membership's foreign key does, instead of importing upward.
    return apps.get_model("inventory", "Organization").objects.all()


def organizations_where(user: Any, capability: Capability) -> QuerySet[Organization]:
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return _organizations().none()
    if user.is_superuser:
        return _organizations()
    return _organizations().filter(memberships__user=user, memberships__role__in=roles_with(capability)).distinct()


def user_can(user: Any, capability: Capability, organization: Organization | int | None) -> bool:
    if organization is None:
        return bool(getattr(user, "is_superuser", False))
    organization_id = organization if isinstance(organization, int) else organization.pk
    return organizations_where(user, capability).filter(pk=organization_id).exists()
