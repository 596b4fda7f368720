"""Read queries for the inventory; every list a user sees starts from one of these."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from fleet.accounts.selectors import organizations_visible_to

from .group_filters import apply_group_filter
from .models import FieldDevice, Gateway, GatewayGroup, Site


def sites_visible_to(user: Any) -> QuerySet[Site]:
    return Site.objects.filter(organization__in=organizations_visible_to(user)).select_related("organization")


def gateways_visible_to(user: Any) -> QuerySet[Gateway]:
    return (
        Gateway.objects.filter(organization__in=organizations_visible_to(user))
        .select_related("organization", "site")
        .prefetch_related("tags")
    )


def groups_visible_to(user: Any) -> QuerySet[GatewayGroup]:
    return GatewayGroup.objects.filter(organization__in=organizations_visible_to(user)).select_related("organization")


def field_devices_visible_to(user: Any) -> QuerySet[FieldDevice]:
    return FieldDevice.objects.filter(gateway__organization__in=organizations_visible_to(user)).select_related(
        "gateway"
    )


def group_members(group: GatewayGroup) -> QuerySet[Gateway]:
    """Gateways in a group now; dynamic groups are evaluated at each call, within the group's tenant."""
    if group.kind == GatewayGroup.Kind.STATIC:
        return group.members.all()
    return apply_group_filter(Gateway.objects.filter(organization=group.organization), group.filter)


def gateway_counts_by_status(user: Any) -> dict[str, int]:
    counts = {status: 0 for status in Gateway.Status.values}
    for row in gateways_visible_to(user).order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts
