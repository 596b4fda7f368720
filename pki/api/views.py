"""PKI REST API (/api/pki/): certificates, enrollment tokens and requests, trust anchors, CAs.

Everything here needs the MANAGE_PKI capability (admins) in the owning organization.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.accounts.roles import Capability
from fleet.audit.services import request_ip
from pki import selectors, services
from pki.filtersets import DeviceCertificateFilterSet, EnrollmentTokenFilterSet
from pki.models import DeviceCertificate, EnrollmentRequest, EnrollmentToken, TrustAnchor

from .serializers import (
    CertificateAuthoritySerializer,
    DeviceCertificateSerializer,
    EnrollmentRequestSerializer,
    EnrollmentTokenBatchSerializer,
    EnrollmentTokenCreateSerializer,
    EnrollmentTokenSerializer,
    RevokeSerializer,
    TrustAnchorSerializer,
)


class PkiViewSet(viewsets.GenericViewSet[Any]):
    read_capability = Capability.MANAGE_PKI


class CertificateAuthorityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PkiViewSet):
    serializer_class = CertificateAuthoritySerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return selectors.authorities()


class DeviceCertificateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PkiViewSet):
    serializer_class = DeviceCertificateSerializer
    filterset_class = DeviceCertificateFilterSet
    search_fields = ["gateway__serial", "lfdi", "sfdi", "serial_number"]
    ordering_fields = ["not_before", "not_after", "gateway__serial", "status"]

    def get_queryset(self) -> Any:
        return selectors.certificates_visible_to(self.request.user)

    @extend_schema(request=RevokeSerializer, responses=DeviceCertificateSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        certificate: DeviceCertificate = self.get_object()
        form = RevokeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        revoked = services.revoke_certificate(
            certificate=certificate, reason=form.validated_data["reason"], user=request.user, ip=request_ip(request)
        )
        return Response(DeviceCertificateSerializer(revoked).data)


class EnrollmentTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, PkiViewSet):
    """Tokens are shown once, in the answer that creates them; the server keeps only a hash."""

    serializer_class = EnrollmentTokenSerializer
    filterset_class = EnrollmentTokenFilterSet
    ordering_fields = ["created", "expires_at", "serial"]

    def get_queryset(self) -> Any:
        return selectors.enrollment_tokens_visible_to(self.request.user)

    @extend_schema(request=EnrollmentTokenCreateSerializer, responses={201: EnrollmentTokenSerializer})
    def create(self, request: Request) -> Response:
        form = EnrollmentTokenCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        token, secret = services.create_enrollment_token(
            organization=data["organization"],
            serial=data["serial"],
            user=request.user,
            reenroll=data["reenroll"],
            valid_hours=data.get("valid_hours"),
            ip=request_ip(request),
        )
        return Response({**EnrollmentTokenSerializer(token).data, "token": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(request=EnrollmentTokenBatchSerializer, responses={(201, "text/csv"): str})
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> HttpResponse:
        """One token per serial, answered as CSV `serial,token,expires_at` for the factory."""
        form = EnrollmentTokenBatchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        tokens = services.create_enrollment_token_batch(
            organization=data["organization"],
            serials=data["serials"],
            user=request.user,
            batch=data["batch"],
            valid_hours=data.get("valid_hours"),
            ip=request_ip(request),
        )
        return tokens_csv_response(tokens, filename=data["batch"] or "enrollment-tokens")

    def perform_destroy(self, instance: EnrollmentToken) -> None:
        services.withdraw_enrollment_token(token=instance, user=self.request.user, ip=request_ip(self.request))


def tokens_csv_response(tokens: list[tuple[EnrollmentToken, str]], *, filename: str) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["serial", "token", "expires_at"])
    for token, secret in tokens:
        writer.writerow([token.serial, secret, token.expires_at.isoformat()])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8", status=201)
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "enrollment-tokens"
    response["Content-Disposition"] = f'attachment; filename="{safe}.csv"'
    response["Cache-Control"] = "no-store"
    return response


class EnrollmentRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PkiViewSet):
    serializer_class = EnrollmentRequestSerializer
    filterset_fields = ["status"]

    def get_queryset(self) -> Any:
        return selectors.enrollment_requests_visible_to(self.request.user)

    @extend_schema(request=None, responses=DeviceCertificateSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        enrollment: EnrollmentRequest = self.get_object()
        certificate = services.accept_enrollment_request(request=enrollment, user=request.user, ip=request_ip(request))
        return Response(DeviceCertificateSerializer(certificate).data)

    @extend_schema(request=None, responses=EnrollmentRequestSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        enrollment: EnrollmentRequest = self.get_object()
        services.reject_enrollment_request(request=enrollment, user=request.user, ip=request_ip(request))
        enrollment.refresh_from_db()
        return Response(EnrollmentRequestSerializer(enrollment).data)


class TrustAnchorViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, PkiViewSet
):
    serializer_class = TrustAnchorSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> Any:
        return selectors.trust_anchors_visible_to(self.request.user)

    def create(self, request: Request) -> Response:
        form = TrustAnchorSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        organization = data.get("organization")
        anchor = services.import_trust_anchor(
            organization=organization,
            name=data.get("name", ""),
            certificate_pem=data["certificate_pem"],
            user=request.user,
            ip=request_ip(request),
        )
        return Response(TrustAnchorSerializer(anchor).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: TrustAnchor) -> None:
        services.remove_trust_anchor(anchor=instance, user=self.request.user, ip=request_ip(self.request))
