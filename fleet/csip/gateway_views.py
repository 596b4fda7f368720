"""Gateway-facing: a gateway gets its utility-link certificate from the test utility PKI (CSR in,
certificate out; the key stays on the gateway) and learns where the head-end is. docs/utility-link.md."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from pki import ca
from pki.authentication import GatewayPrincipal, GatewayTokenAuthentication, IsGateway
from pki.gateway_views import GatewayAPIView

from . import sep, services
from .utility_pki import test_utility_pki

CERTIFICATE_DAYS = 365


def headend_url() -> str:
    configured: str = settings.GRIDFLEET_CSIP_PUBLIC_URL
    return configured.rstrip("/") or f"https://{settings.GRIDFLEET_CSIP_HOST}:{settings.GRIDFLEET_CSIP_PORT}"


class UtilityCertificateView(GatewayAPIView):
    """POST {"csr": PEM} -> the utility-link certificate, the utility CA and the head-end's address."""

    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def post(self, request: Request) -> Response:
        gateway = cast(GatewayPrincipal, request.user).gateway
        data = self.body(request, "csr")
        now = timezone.now()
        pki = test_utility_pki(now=now)
        certificate, device = services.issue_utility_certificate(
            gateway=gateway, csr_pem=data["csr"], pki=pki, now=now, days=CERTIFICATE_DAYS
        )
        return Response(
            {
                "certificate": ca.certificate_pem(certificate),
                "ca_bundle": pki.ca_certificate_path.read_text(),
                "server_url": headend_url(),
                "dcap_path": sep.dcap_path(),
                "lfdi": device.lfdi,
                "sfdi": f"{device.sfdi:012d}",
                "pin": device.pin,
            },
            status=201,
        )
