from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.accounts.api.viewsets import AuditedModelViewSet
from fleet.accounts.permissions import SuperuserOrReadCapability
from fleet.accounts.selectors import organizations_visible_to
from fleet.audit.services import request_ip
from fleet.core.errors import DomainError
from fleet.inventory import csv_io, selectors, services
from fleet.inventory.filtersets import (
    FieldDeviceFilterSet,
    GatewayFilterSet,
    GatewayGroupFilterSet,
    SiteFilterSet,
)

from .serializers import (
    FieldDeviceSerializer,
    GatewayAttributeChangeSerializer,
    GatewayGroupSerializer,
    GatewaySerializer,
    OrganizationSerializer,
    SiteSerializer,
)


class CsvImportSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="UTF-8 CSV with the columns of the export.")


class CsvImportExportMixin:
    """`GET .../export/` downloads the visible rows as CSV; `POST .../import/` creates rows, all or none."""

    csv_kind: str

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> HttpResponse:
        return csv_io.export_response(self.csv_kind, self.filter_queryset(self.get_queryset()))  # type: ignore[attr-defined]

    @extend_schema(request={"multipart/form-data": CsvImportSerializer}, responses={201: dict, 400: dict})
    @action(
        detail=False, methods=["post"], url_path="import", parser_classes=[parsers.MultiPartParser, parsers.FormParser]
    )
    def import_csv(self, request: Request) -> Response:
        form = CsvImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            text = form.validated_data["file"].read().decode("utf-8")
        except UnicodeDecodeError:
            raise DomainError("The file is not UTF-8 text.", code="not_utf8", field="file") from None
        result = services.import_csv(kind=self.csv_kind, text=text, user=request.user, ip=request_ip(request))
        return Response({"created": result.created}, status=status.HTTP_201_CREATED)


class OrganizationViewSet(AuditedModelViewSet):
    """Tenants. Every user sees their own; only superusers create or change them."""

    selector = staticmethod(organizations_visible_to)
    permission_classes = [SuperuserOrReadCapability]
    serializer_class = OrganizationSerializer
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "created"]
    filterset_fields = ["kind"]


class SiteViewSet(CsvImportExportMixin, AuditedModelViewSet):
    selector = staticmethod(selectors.sites_visible_to)
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet
    search_fields = ["name", "address", "utility_account"]
    ordering_fields = ["name", "created", "nameplate_kw"]
    csv_kind = "sites"


class GatewayViewSet(CsvImportExportMixin, AuditedModelViewSet):
    selector = staticmethod(selectors.gateways_visible_to)
    serializer_class = GatewaySerializer
    filterset_class = GatewayFilterSet
    search_fields = ["serial", "name", "hardware_model", "site__name"]
    ordering_fields = ["serial", "last_seen", "status", "firmware_version", "created"]
    csv_kind = "gateways"

    @extend_schema(responses=GatewayAttributeChangeSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="attribute-history")
    def attribute_history(self, request: Request, pk: str | None = None) -> Response:
        gateway = self.get_object()
        page = self.paginate_queryset(gateway.attribute_changes.all())
        return self.get_paginated_response(GatewayAttributeChangeSerializer(page, many=True).data)


class GatewayGroupViewSet(AuditedModelViewSet):
    selector = staticmethod(selectors.groups_visible_to)
    serializer_class = GatewayGroupSerializer
    filterset_class = GatewayGroupFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created"]

    @extend_schema(responses=GatewaySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="gateways")
    def gateways(self, request: Request, pk: str | None = None) -> Response:
        """The group's current members (dynamic groups are evaluated now)."""
        page = self.paginate_queryset(selectors.group_members(self.get_object()).prefetch_related("tags"))
        return self.get_paginated_response(GatewaySerializer(page, many=True, context={"request": request}).data)


class FieldDeviceViewSet(AuditedModelViewSet):
    selector = staticmethod(selectors.field_devices_visible_to)
    serializer_class = FieldDeviceSerializer
    filterset_class = FieldDeviceFilterSet
    search_fields = ["make", "model", "serial", "address"]
    ordering_fields = ["address", "kind", "created"]
