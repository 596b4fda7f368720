"""The fixtures other engineers rely on behave as documented."""

from __future__ import annotations

from typing import Any

from pki import services
from pki.models import DeviceCertificate


def test_enrolled_gateway_has_an_active_certificate_and_a_working_token(enrolled_gateway: Any) -> None:
    assert enrolled_gateway.certificate.status == DeviceCertificate.Status.ACTIVE
    assert enrolled_gateway.gateway.status == "active"
    token = enrolled_gateway.access_token()
    certificate = services.authenticate_access_token(token=token)
    assert certificate.gateway == enrolled_gateway.gateway
