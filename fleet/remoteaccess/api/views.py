from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.accounts.roles import Capability
from fleet.audit.services import request_ip

from .. import selectors, services
from ..recording import recording_path
from .serializers import MaintenanceSessionSerializer


class MaintenanceSessionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Any]):
    """Remote maintenance sessions: a technician's tunnel to a field device's port, a serial port
    or a terminal behind a gateway (docs/remote-access.md). The services check who may open,
    approve and close; the list shows sessions of the organizations the user may view."""

    serializer_class = MaintenanceSessionSerializer
    filterset_fields = ["gateway", "state", "kind"]
    ordering_fields = ["created"]
    read_capability = Capability.VIEW
    write_capability = Capability.VIEW  # the service checks the capability each action needs

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.sessions_visible_to(self.request.user).prefetch_related("connection_log")

    def perform_create(self, serializer: Any) -> None:
        data = serializer.validated_data
        minutes = data.get("duration_minutes")
        serializer.instance = services.open_session(
            gateway=data["gateway"],
            user=self.request.user,
            kind=data["kind"],
            target=data.get("target", ""),
            serial=data.get("serial"),
            reason=data["reason"],
            duration=timedelta(minutes=minutes) if minutes else None,
            ip=request_ip(self.request),
        )

    @extend_schema(request=None, responses=MaintenanceSessionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        session = services.approve_session(session=self.get_object(), user=request.user, ip=request_ip(request))
        return Response(self.get_serializer(session).data)

    @extend_schema(request=None, responses=MaintenanceSessionSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        session = services.close_session(session=self.get_object(), user=request.user, ip=request_ip(request))
        return Response(self.get_serializer(session).data)

    @extend_schema(responses={(200, "application/x-asciicast"): OpenApiResponse(description="asciicast v2")})
    @action(detail=True, methods=["get"])
    def recording(self, request: Request, pk: str | None = None) -> FileResponse:
        """The terminal session's recording (asciicast v2: a JSON header line, then events)."""
        session = self.get_object()
        path = recording_path(session.recording) if session.recording else None
        if path is None or not path.exists():
            raise Http404("This session has no recording (yet).")
        return FileResponse(path.open("rb"), content_type="application/x-asciicast", filename=path.name)
