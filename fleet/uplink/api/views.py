from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request

from fleet.accounts.roles import Capability
from fleet.audit.services import request_ip
from fleet.uplink import selectors, services
from fleet.uplink.gateway_views import upload_path

from .serializers import CommandSerializer


class CommandViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Any]):
    """Commands to gateways (check_updates, upload_logs, reboot, open_tunnel, set_power_limit).

    A command is delivered at once when the gateway is connected, else after its next hello, until
    it expires. Each command name needs its own capability in the gateway's organization.
    """

    serializer_class = CommandSerializer
    filterset_fields = ["gateway", "name", "state"]
    ordering_fields = ["created"]
    read_capability = Capability.VIEW

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.commands_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        serializer.instance = services.send_command(
            gateway=data["gateway"],
            name=data["name"],
            args=data.get("args") or {},
            user=self.request.user,
            ttl=timedelta(seconds=data["ttl_seconds"]),
            ip=request_ip(self.request),
        )

    @extend_schema(responses={(200, "application/gzip"): OpenApiResponse(description="the uploaded logs")})
    @action(detail=True, methods=["get"], url_path="log-upload")
    def log_upload(self, request: Request, pk: str | None = None) -> FileResponse:
        """The file a gateway uploaded in answer to this upload_logs command."""
        path = upload_path(self.get_object())
        if not path.exists():
            raise Http404("The gateway has not uploaded logs for this command (yet).")
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="application/gzip")
