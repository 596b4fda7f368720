"""Tenancy: which organizations a user may see or act in. Every other selector builds on these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from .roles import Capability, roles_with

if TYPE_CHECKING:
    from fleet.inventory.models import Organization


def organizations_visible_to(user: Any) -> QuerySet[Organization]:
    return organizations_where(user, Capability.VIEW)


def organizations_where(user: Any, capability: Capability) -> QuerySet[Organization]:
    from fleet.inventory.models import Organization

    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user, memberships__role__in=roles_with(capability)).distinct()


def user_can(user: Any, capability: Capability, organization: Organization | int | None) -> bool:
    if organization is None:
        return bool(getattr(user, "is_superuser", False))
    organization_id = organization if isinstance(organization, int) else organization.pk
    return organizations_where(user, capability).filter(pk=organization_id).exists()


def capabilities_of(user: Any, organization: Organization) -> set[Capability]:
    return {capability for capability in Capability if user_can(user, capability, organization)}
