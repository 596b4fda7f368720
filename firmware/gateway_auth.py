"""Which gateway made a request: the one place the firmware app asks the PKI (bearer tokens)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework.exceptions import AuthenticationFailed

from fleet.inventory.models import Gateway


def authenticated_gateway(request: HttpRequest) -> Gateway | None:
    """The gateway whose valid bearer token the request carries, else None."""
    from pki.authentication import GatewayTokenAuthentication

    try:
        result: Any = GatewayTokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    if result is None:
        return None
    principal, _token = result
    return getattr(principal, "gateway", None)
