"""REST API of deployments, mounted at /api/deployments/. Every write goes through one service."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from firmware.selectors import artifacts_visible_to
from fleet.accounts.selectors import organizations_visible_to
from fleet.audit.services import request_ip
from fleet.inventory.selectors import gateways_visible_to, groups_visible_to

from .. import selectors, services
from ..models import Deployment
from .serializers import (
    ActionDetailSerializer,
    DeploymentRequestSerializer,
    DeploymentSerializer,
    ExclusionSerializer,
    GatewayActionSerializer,
    OperationSerializer,
)


def request_serializer(request: Request) -> DeploymentRequestSerializer:
    user = request.user
    return DeploymentRequestSerializer(
        data=request.data,
        organizations=organizations_visible_to(user),
        artifacts=artifacts_visible_to(user),
        groups=groups_visible_to(user),
        gateways=gateways_visible_to(user),
    )


# Any: besides deployments, its actions page through gateway actions and exclusions.
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Any]):
    """Deployments: list, create (with a preview first), detail with live progress per phase."""

    serializer_class = DeploymentSerializer
    filterset_fields = ["status", "organization", "artifact_type"]
    search_fields = ["name"]
    ordering_fields = ["created", "name", "status"]
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> Any:
        return selectors.deployments_visible_to(self.request.user).prefetch_related("phases", "target_gateways")

    @extend_schema(request=DeploymentRequestSerializer, responses={201: DeploymentSerializer})
    def create(self, request: Request) -> Response:
        form = request_serializer(request)
        form.is_valid(raise_exception=True)
        req = form.to_request()
        deployment = services.create_deployment(
            organization=req.organization,
            name=req.name,
            artifacts=req.artifacts,
            target=req.target,
            plan=req.plan,
            include_new_gateways=req.include_new_gateways,
            actor=request.user,
            now=timezone.now(),
            ip=request_ip(request),
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DeploymentRequestSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """Which gateways each phase would take and which are excluded; writes nothing."""
        form = request_serializer(request)
        form.is_valid(raise_exception=True)
        req = form.to_request()
        return Response(
            services.preview(
                organization=req.organization,
                artifacts=req.artifacts,
                target=req.target,
                plan=req.plan,
                actor=request.user,
            )
        )

    @extend_schema(
        parameters=[OpenApiParameter("state", str), OpenApiParameter("phase", int)],
        responses={200: GatewayActionSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], serializer_class=GatewayActionSerializer)
    def gateways(self, request: Request, pk: str) -> Response:
        """Each gateway's action: state, attempt, failure; filter with ?state= and ?phase=<index>."""
        deployment = self.get_object()
        rows = (
            selectors.actions_visible_to(request.user).filter(deployment=deployment).select_related("previous_artifact")
        )
        if state := request.query_params.get("state"):
            rows = rows.filter(state=state)
        if (phase := request.query_params.get("phase")) and phase.isdigit():
            rows = rows.filter(phase__index=int(phase))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(GatewayActionSerializer(page, many=True).data)

    @extend_schema(responses={200: ExclusionSerializer(many=True)})
    @action(detail=True, methods=["get"], serializer_class=ExclusionSerializer)
    def exclusions(self, request: Request, pk: str) -> Response:
        """Targeted gateways that are not assigned, with the reason (e.g. incompatible hardware)."""
        deployment = self.get_object()
        page = self.paginate_queryset(deployment.exclusions.select_related("gateway"))
        return self.get_paginated_response(ExclusionSerializer(page, many=True).data)


class DeploymentOperationView(generics.GenericAPIView[Deployment]):
    """POST /api/deployments/<id>/<operation>/ with an optional {"reason": "..."}:
    pause, resume, cancel, retry-failed, approve (the phase awaiting approval), rollback."""

    serializer_class = OperationSerializer

    def get_queryset(self) -> Any:
        return selectors.deployments_visible_to(self.request.user)

    @extend_schema(
        request=OperationSerializer, responses={200: DeploymentSerializer}, operation_id="deployments_operate"
    )
    def post(self, request: Request, pk: int, operation: str) -> Response:
        deployment = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(request, deployment)
        form = OperationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = services.operate(
            deployment=deployment,
            operation=operation,
            reason=form.validated_data["reason"],
            actor=request.user,
            now=timezone.now(),
            ip=request_ip(request),
        )
        shown = result if operation == "rollback" else deployment
        shown.refresh_from_db()
        return Response(DeploymentSerializer(shown).data)


class GatewayActionView(APIView):
    """One gateway's action in a deployment with its full history (reports accepted and refused)."""

    @extend_schema(responses={200: ActionDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        action = get_object_or_404(selectors.actions_visible_to(request.user).prefetch_related("events"), pk=pk)
        return Response(ActionDetailSerializer(action).data)
