"""REST API of the firmware app, mounted at /api/firmware/."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.accounts.selectors import organizations_visible_to
from fleet.audit.services import request_ip
from fleet.core.api import SelectorQuerysetMixin
from fleet.inventory.selectors import gateways_visible_to, sites_visible_to

from .. import selectors, services
from ..models import Artifact, Assignment, ConfigTemplate, ConfigValues, DeviceBundle
from ..repo import get_repository
from .serializers import (
    ArtifactSerializer,
    ArtifactUploadSerializer,
    AssignmentSerializer,
    AssignRequestSerializer,
    ConfigBuildRequestSerializer,
    ConfigTemplateSerializer,
    ConfigValuesSerializer,
    DeviceBundleSerializer,
    LicenseRequestSerializer,
    limit_choices,
)


class ArtifactViewSet(
    SelectorQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[Artifact],
):
    """Uploaded bundles. Created by multipart upload (streamed to disk), never changed afterwards."""

    serializer_class = ArtifactSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]
    filterset_fields = ["type", "name", "organization"]
    search_fields = ["name", "version", "release_notes"]
    ordering_fields = ["name", "version", "created"]

    selector = staticmethod(selectors.artifacts_visible_to)

    @extend_schema(request={"multipart/form-data": ArtifactUploadSerializer}, responses={201: ArtifactSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = ArtifactUploadSerializer(data=request.data, organizations=organizations_visible_to(request.user))
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        artifact = services.upload_artifact(
            organization=data["organization"],
            type=data["type"],
            name=data["name"],
            version=data["version"],
            fileobj=upload.file,
            hardware_models=data["hardware_models"],
            release_notes=data["release_notes"],
            declared_size=data.get("size"),
            declared_sha256=data.get("sha256"),
            actor=request.user,
            ip=request_ip(request),
        )
        return Response(ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)


class AssignmentViewSet(
    SelectorQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Assignment],
):
    """What each gateway must run. POST assigns an artifact; DELETE stops managing that type."""

    serializer_class = AssignmentSerializer
    filterset_fields = ["gateway", "artifact_type"]

    selector = staticmethod(selectors.assignments_visible_to)

    @extend_schema(request=AssignRequestSerializer, responses={201: AssignmentSerializer})
    def create(self, request: Request) -> Response:
        form = AssignRequestSerializer(
            data=request.data,
            gateways=gateways_visible_to(request.user),
            artifacts=selectors.artifacts_visible_to(request.user),
        )
        form.is_valid(raise_exception=True)
        artifact = form.validated_data["artifact"]
        assignment = services.assign(
            gateway=form.validated_data["gateway"],
            artifact_type=artifact.type,
            artifact=artifact,
            actor=request.user,
            ip=request_ip(request),
        )
        return Response(AssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        assignment = self.get_object()
        services.unassign(
            gateway=assignment.gateway,
            artifact_type=assignment.artifact_type,
            actor=request.user,
            ip=request_ip(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceBundleViewSet(SelectorQuerysetMixin, viewsets.ReadOnlyModelViewSet[DeviceBundle]):
    """Bundles the server built per gateway (assignment documents, configs, licenses)."""

    serializer_class = DeviceBundleSerializer
    filterset_fields = ["gateway", "kind"]

    selector = staticmethod(selectors.device_bundles_visible_to)


class LicenseView(APIView):
    @extend_schema(request=LicenseRequestSerializer, responses={201: DeviceBundleSerializer})
    def post(self, request: Request) -> Response:
        form = LicenseRequestSerializer(data=request.data, gateways=gateways_visible_to(request.user))
        form.is_valid(raise_exception=True)
        bundle = services.issue_license(**form.validated_data, actor=request.user, ip=request_ip(request))
        return Response(DeviceBundleSerializer(bundle).data, status=status.HTTP_201_CREATED)


class ConfigBuildView(APIView):
    @extend_schema(request=ConfigBuildRequestSerializer, responses={201: DeviceBundleSerializer})
    def post(self, request: Request) -> Response:
        form = ConfigBuildRequestSerializer(
            data=request.data,
            gateways=gateways_visible_to(request.user),
            templates=selectors.config_templates_visible_to(request.user),
        )
        form.is_valid(raise_exception=True)
        bundle = services.build_config(**form.validated_data, actor=request.user, ip=request_ip(request))
        return Response(DeviceBundleSerializer(bundle).data, status=status.HTTP_201_CREATED)


class ConfigTemplateViewSet(
    SelectorQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[ConfigTemplate],
):
    serializer_class = ConfigTemplateSerializer

    selector = staticmethod(selectors.config_templates_visible_to)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = ConfigTemplateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        template = services.create_config_template(**data, actor=request.user, ip=request_ip(request))
        return Response(ConfigTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class ConfigValuesViewSet(
    SelectorQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet[ConfigValues],
):
    """Site or gateway values for a template; POST again to replace them."""

    serializer_class = ConfigValuesSerializer
    filterset_fields = ["template", "site", "gateway"]

    selector = staticmethod(selectors.config_values_visible_to)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        form = ConfigValuesSerializer(data=request.data)
        limit_choices(form.fields["template"], selectors.config_templates_visible_to(request.user))
        limit_choices(form.fields["site"], sites_visible_to(request.user))
        limit_choices(form.fields["gateway"], gateways_visible_to(request.user))
        form.is_valid(raise_exception=True)
        data = form.validated_data
        row = services.set_config_values(**data, actor=request.user, ip=request_ip(request))
        return Response(ConfigValuesSerializer(row).data, status=status.HTTP_201_CREATED)


class ChannelReissueView(APIView):
    """Give a gateway a new opaque update token; its device targets move to the new path."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request: Request, gateway_id: int) -> Response:
        gateway = get_object_or_404(gateways_visible_to(request.user), pk=gateway_id)
        services.reissue_channel_token(gateway=gateway, actor=request.user, ip=request_ip(request))
        return Response({"gateway": gateway.pk, "reissued": True})


class RepositoryStatusView(APIView):
    """Versions and expiries of the TUF roles, and offline metadata waiting for signatures."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response(get_repository().status())
