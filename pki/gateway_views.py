"""Gateway-facing endpoints of the identity protocol (docs/protocol/identity.md), under /gw/v1/.

Views parse JSON, call one service and render; refusals (subclasses of the one root error) render
as the protocol's `{"error": code, "detail": message}` with the status the error class declares,
by the one API exception handler (`fleet.core.api.exception_handler`, `gateway_protocol`).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.audit.services import request_ip
from fleet.core.api import AuthenticationRefused
from pki import selectors, services
from pki.authentication import GatewayPrincipal, GatewayTokenAuthentication, IsGateway
from pki.errors import InvalidAccessTokenError, InvalidRequestError
from pki.models import DeviceCertificate, EnrollmentRequest, RevocationList

PEM_TYPE = "application/x-pem-file"
ENROLLMENT_POLL_SECONDS = 60


def certificate_body(certificate: DeviceCertificate) -> dict[str, Any]:
    """The `issued` answer of enrollment and renewal."""
    assert certificate.issuer is not None
    return {
        "status": "issued",
        "serial": certificate.gateway.serial,
        "certificate": certificate.certificate_pem,
        "chain": selectors.issuer_chain_pem(certificate.issuer),
        "certificate_serial_number": certificate.serial_number,
        "not_before": certificate.not_before,
        "not_after": certificate.not_after,
        "renew_after": certificate.renew_after,
        "lfdi": certificate.lfdi,
        "sfdi": certificate.sfdi,
    }


def pending_body(request: EnrollmentRequest) -> dict[str, Any]:
    return {"status": "pending", "request_id": str(request.public_id), "retry_after": ENROLLMENT_POLL_SECONDS}


class GatewayAPIView(APIView):
    """Base for /gw/v1/ views: protocol-shaped errors, no session/CSRF, no user authentication."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = [AllowAny]
    gateway_protocol = True

    def handle_exception(self, exc: Exception) -> Response:
        # The protocol names these two refusals with its own codes (docs/protocol/identity.md).
        if isinstance(exc, exceptions.NotAuthenticated):
            exc = AuthenticationRefused(
                InvalidAccessTokenError("This endpoint needs 'Authorization: Bearer <token>' from /gw/v1/auth/token.")
            )
        if isinstance(exc, exceptions.ParseError | exceptions.UnsupportedMediaType):
            exc = InvalidRequestError(f"The body must be a JSON object: {exc.detail}")
        return super().handle_exception(exc)

    def body(self, request: Request, *fields: str) -> dict[str, Any]:
        data = request.data
        if not isinstance(data, dict):
            raise InvalidRequestError("The body must be a JSON object.")
        for field in fields:
            if not isinstance(data.get(field), str) or not data[field]:
                raise InvalidRequestError(f"'{field}' is required and must be a string.")
        return data


class EnrollView(GatewayAPIView):
    def post(self, request: Request) -> Response:
        data = self.body(request, "serial", "token", "csr")
        hardware_model = data.get("hardware_model", "")
        if not isinstance(hardware_model, str):
            raise InvalidRequestError("'hardware_model' must be a string.")
        outcome = services.enroll(
            serial=data["serial"],
            token=data["token"],
            csr_pem=data["csr"],
            hardware_model=hardware_model,
            ip=request_ip(request),
        )
        if outcome.request is not None:
            return Response(pending_body(outcome.request), status=status.HTTP_202_ACCEPTED)
        assert outcome.certificate is not None
        return Response(certificate_body(outcome.certificate), status=status.HTTP_201_CREATED)


class EnrollmentStatusView(GatewayAPIView):
    def get(self, request: Request, request_id: str) -> Response:
        enrollment = services.enrollment_status(request_id=request_id)
        if enrollment.certificate is not None:
            return Response(certificate_body(enrollment.certificate))
        return Response(pending_body(enrollment), status=status.HTTP_202_ACCEPTED)


class AccessTokenView(GatewayAPIView):
    def post(self, request: Request) -> Response:
        data = self.body(request)
        issued = services.authenticate_signed_request(
            certificate_pem=data.get("certificate"),
            chain_pem=data.get("chain", ""),
            payload_b64=data.get("payload"),
            signature_b64=data.get("signature"),
            ip=request_ip(request),
        )
        return Response(
            {
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": settings.GRIDFLEET_PKI_ACCESS_TOKEN_TTL,
                "expires_at": issued.expires_at,
                "certificate_not_after": issued.certificate.not_after,
                "renew_after": issued.certificate.renew_after,
            }
        )


class RenewView(GatewayAPIView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def post(self, request: Request) -> Response:
        principal: GatewayPrincipal = request.user  # type: ignore[assignment]
        data = self.body(request)
        renewed = services.renew_certificate(
            certificate=principal.certificate, csr_pem=data.get("csr"), ip=request_ip(request)
        )
        return Response(certificate_body(renewed), status=status.HTTP_201_CREATED)


class IdentityView(GatewayAPIView):
    """Who the bearer token says we are: lets an agent check its token and certificate state."""

    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def get(self, request: Request) -> Response:
        principal: GatewayPrincipal = request.user  # type: ignore[assignment]
        certificate = principal.certificate
        return Response(
            {
                "serial": certificate.gateway.serial,
                "gateway_status": certificate.gateway.status,
                "certificate_serial_number": certificate.serial_number,
                "lfdi": certificate.lfdi,
                "sfdi": certificate.sfdi,
                "not_after": certificate.not_after,
                "renew_after": certificate.renew_after,
            }
        )


class CAChainView(GatewayAPIView):
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(selectors.ca_chain_pem(), content_type=PEM_TYPE)


class CABundleView(GatewayAPIView):
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(selectors.ca_bundle_pem(), content_type=PEM_TYPE)


def _crl_response(crls: list[RevocationList], *, pem: bool) -> HttpResponse:
    if pem:
        body = b"".join(x509.load_der_x509_crl(bytes(c.der)).public_bytes(serialization.Encoding.PEM) for c in crls)
        response = HttpResponse(body, content_type=PEM_TYPE)
    else:
        response = HttpResponse(bytes(crls[0].der), content_type="application/pkix-crl")
    response["Cache-Control"] = "public, max-age=300"
    return response


class CRLView(GatewayAPIView):
    """DER: the active issuing CA's CRL. PEM: the CRLs of every unexpired issuing CA, concatenated."""

    pem = False

    def get(self, request: Request) -> HttpResponse:
        crls = selectors.current_crls()
        return _crl_response(crls if self.pem else crls[:1], pem=self.pem)


class AuthorityCRLView(GatewayAPIView):
    """One issuing CA's CRL at the URL its certificates name as CRL distribution point."""

    pem = False

    def get(self, request: Request, authority_id: int) -> HttpResponse:
        crl = selectors.crl_of(authority_id)
        if crl is None:
            raise Http404("No CRL for this certificate authority.")
        return _crl_response([crl], pem=self.pem)
