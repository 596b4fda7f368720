"""Filters shared by the REST API and the web UI lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.db.models import Q, QuerySet

from .models import FieldDevice, Gateway, GatewayGroup, Site

# Apps above inventory add ways to find a gateway by an identifier they own (pki: the LFDI or
# SFDI of its certificate), registered in their AppConfig.ready(). A lookup returns the matching
# gateway ids (a list or a values("gateway_id") queryset); it is not tenancy-filtered, the
# search applies it to a queryset already scoped to the user.
GatewayLookup = Callable[[str], Any]
_gateway_lookups: list[GatewayLookup] = []


def register_gateway_lookup(lookup: GatewayLookup) -> GatewayLookup:
    if lookup not in _gateway_lookups:
        _gateway_lookups.append(lookup)
    return lookup


def gateways_matching_identity(value: str) -> Q:
    """Gateways some registered lookup finds by `value`."""
    matches = Q(pk__in=[])
    for lookup in _gateway_lookups:
        matches |= Q(pk__in=lookup(value))
    return matches


class GatewayFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    organization = django_filters.CharFilter(field_name="organization__slug")
    status = django_filters.MultipleChoiceFilter(choices=Gateway.Status.choices)
    tag = django_filters.CharFilter(field_name="tags__slug")
    hardware_model = django_filters.CharFilter()
    firmware_version = django_filters.CharFilter()
    seen_after = django_filters.IsoDateTimeFilter(field_name="last_seen", lookup_expr="gte")
    seen_before = django_filters.IsoDateTimeFilter(field_name="last_seen", lookup_expr="lt")
    never_seen = django_filters.BooleanFilter(field_name="last_seen", lookup_expr="isnull")
    group = django_filters.NumberFilter(method="in_group")

    class Meta:
        model = Gateway
        fields = ["site", "organization", "status", "tag", "hardware_model", "firmware_version"]

    def search(self, queryset: QuerySet[Gateway], name: str, value: str) -> QuerySet[Gateway]:
        value = value.strip()
        return queryset.filter(
            Q(serial__icontains=value)
            | Q(name__icontains=value)
            | Q(hardware_model__icontains=value)
            | Q(site__name__icontains=value)
            | gateways_matching_identity(value)
        )

    def in_group(self, queryset: QuerySet[Gateway], name: str, value: int) -> QuerySet[Gateway]:
        from .selectors import group_members

        group = GatewayGroup.objects.filter(pk=value).first()
        if group is None:
            return queryset.none()
        return queryset.filter(pk__in=group_members(group).values("pk"))


class SiteFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    organization = django_filters.CharFilter(field_name="organization__slug")

    class Meta:
        model = Site
        fields = ["organization", "timezone", "utility_account"]

    def search(self, queryset: QuerySet[Site], name: str, value: str) -> QuerySet[Site]:
        return queryset.filter(Q(name__icontains=value) | Q(address__icontains=value) | Q(utility_account=value))


class GatewayGroupFilterSet(django_filters.FilterSet):
    organization = django_filters.CharFilter(field_name="organization__slug")

    class Meta:
        model = GatewayGroup
        fields = ["organization", "kind"]


class FieldDeviceFilterSet(django_filters.FilterSet):
    class Meta:
        model = FieldDevice
        fields = ["gateway", "kind", "protocol", "make", "model"]
