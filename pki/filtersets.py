"""Filters shared by the PKI REST API and the web UI lists."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from pki.models import DeviceCertificate, EnrollmentToken
from pki.selectors import gateway_ids_by_fingerprint, normalize_fingerprint


class DeviceCertificateFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Serial, LFDI or SFDI")
    fingerprint = django_filters.CharFilter(method="by_fingerprint", label="LFDI or SFDI")
    lfdi = django_filters.CharFilter(method="by_lfdi")
    sfdi = django_filters.CharFilter(method="by_sfdi")
    gateway_serial = django_filters.CharFilter(field_name="gateway__serial")
    organization = django_filters.CharFilter(field_name="gateway__organization__slug")
    status = django_filters.ChoiceFilter(choices=DeviceCertificate.Status.choices)

    class Meta:
        model = DeviceCertificate
        fields = ["gateway", "status"]

    def search(self, queryset: QuerySet[DeviceCertificate], name: str, value: str) -> QuerySet[DeviceCertificate]:
        value = value.strip()
        normalized = normalize_fingerprint(value)
        return queryset.filter(
            Q(gateway__serial__icontains=value)
            | Q(lfdi=normalized)
            | Q(sfdi=normalized.zfill(12))
            | Q(serial_number=normalized)
        )

    def by_fingerprint(
        self, queryset: QuerySet[DeviceCertificate], name: str, value: str
    ) -> QuerySet[DeviceCertificate]:
        return queryset.filter(gateway_id__in=gateway_ids_by_fingerprint(value))

    def by_lfdi(self, queryset: QuerySet[DeviceCertificate], name: str, value: str) -> QuerySet[DeviceCertificate]:
        return queryset.filter(lfdi=normalize_fingerprint(value))

    def by_sfdi(self, queryset: QuerySet[DeviceCertificate], name: str, value: str) -> QuerySet[DeviceCertificate]:
        return queryset.filter(sfdi=normalize_fingerprint(value).zfill(12))


class EnrollmentTokenFilterSet(django_filters.FilterSet):
    organization = django_filters.CharFilter(field_name="organization__slug")
    used = django_filters.BooleanFilter(field_name="used_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = EnrollmentToken
        fields = ["serial", "batch", "reenroll"]
