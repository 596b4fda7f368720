"""REST API of the utility link: programs, controls (create, cancel), responses, EndDevices, readings."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.audit.services import request_ip

from .. import selectors, services
from ..models import DerControl, DerProgram, EndDevice
from .serializers import DerControlResponseSerializer, DerControlSerializer, DerProgramSerializer, EndDeviceSerializer


class DerProgramViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[DerProgram]):
    serializer_class = DerProgramSerializer

    def get_queryset(self) -> Any:
        return selectors.programs_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_program(
            **serializer.validated_data, user=self.request.user, ip=request_ip(self.request)
        )


class DerControlViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[DerControl]):
    """Scheduled DER events. Create with `export_limit_w` or `max_lim_pct`; `cancel` withdraws one."""

    serializer_class = DerControlSerializer
    filterset_fields = ["program", "cancelled"]

    def get_queryset(self) -> Any:
        return selectors.controls_visible_to(self.request.user)

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        program = get_object_or_404(selectors.programs_visible_to(self.request.user), pk=data.pop("program").pk)
        serializer.instance = services.create_control(
            program=program, **data, user=self.request.user, now=timezone.now(), ip=request_ip(self.request)
        )

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        control = services.cancel_control(
            control=self.get_object(), user=request.user, now=timezone.now(), ip=request_ip(request)
        )
        return Response(self.get_serializer(control).data, status=status.HTTP_200_OK)

    @action(detail=True, methods=["get"])
    def responses(self, request: Request, pk: str | None = None) -> Response:
        control = self.get_object()
        rows = selectors.responses_visible_to(request.user).filter(control=control)
        return Response(DerControlResponseSerializer(rows, many=True).data)


class EndDeviceViewSet(viewsets.ReadOnlyModelViewSet[EndDevice]):
    """Gateways' EndDevices on the head-end, with the utility-link state their agents report."""

    serializer_class = EndDeviceSerializer

    def get_queryset(self) -> Any:
        return selectors.end_devices_visible_to(self.request.user)

    @action(detail=True, methods=["get"])
    def readings(self, request: Request, pk: str | None = None) -> Response:
        """Mirrored readings (MirrorUsagePoints), one series per quantity."""
        return Response(selectors.mirror_series(self.get_object()))
