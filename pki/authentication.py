"""How gateways are authenticated on HTTP (DRF) and WebSocket (Channels).

Primary: `Authorization: Bearer <token>`, the token coming from `POST /gw/v1/auth/token` (a signed
request proving possession of the certificate key, see docs/protocol/identity.md). Every request
re-checks the token's certificate, so a revocation takes effect on the next request.

Optional: mutual TLS terminated by a proxy in settings.TRUSTED_PROXIES, which passes the verified
client certificate in GRIDFLEET_PKI_CLIENT_CERT_HEADER. The header is ignored from anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from channels.db import database_sync_to_async
from django.conf import settings
from rest_framework import authentication, permissions

from fleet.audit.services import request_ip
from fleet.core.api import AuthenticationRefused
from fleet.inventory.models import Gateway
from pki import services
from pki.errors import IdentityError
from pki.models import DeviceCertificate

BEARER = "bearer"


@dataclass
class GatewayPrincipal:
    """`request.user` for a gateway: not a Django user, but answers the questions DRF asks."""

    gateway: Gateway
    certificate: DeviceCertificate
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    is_staff: bool = False

    @property
    def pk(self) -> None:
        return None

    def get_username(self) -> str:
        return f"gateway:{self.gateway.serial}"

    def __str__(self) -> str:
        return self.get_username()


def bearer_token(header: str | bytes | None) -> str | None:
    if not header:
        return None
    value = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        return None
    return token.strip()


def proxied_client_certificate(*, headers: dict[str, str], peer: str | None) -> str | None:
    """The PEM client certificate a trusted TLS terminator vouches for, if mutual TLS is on."""
    header = settings.GRIDFLEET_PKI_CLIENT_CERT_HEADER
    if not header or peer not in settings.TRUSTED_PROXIES:
        return None
    value = headers.get(header.lower(), "").strip()
    return unquote(value) if value else None


def _authenticate(
    *, authorization: str | bytes | None, headers: dict[str, str], peer: str | None, ip: str | None
) -> DeviceCertificate | None:
    token = bearer_token(authorization)
    if token is not None:
        return services.authenticate_access_token(token=token, ip=ip)
    pem = proxied_client_certificate(headers=headers, peer=peer)
    if pem is not None:
        return services.authenticate_client_certificate(certificate_pem=pem, ip=ip)
    return None


class GatewayTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication for gateway endpoints; requests with no gateway credential are left to others."""

    def authenticate(self, request: Any) -> tuple[GatewayPrincipal, str | None] | None:
        meta = request.META
        try:
            certificate = _authenticate(
                authorization=meta.get("HTTP_AUTHORIZATION"),
                headers={k[5:].replace("_", "-").lower(): v for k, v in meta.items() if k.startswith("HTTP_")},
                peer=meta.get("REMOTE_ADDR"),
                ip=request_ip(request),
            )
        except IdentityError as e:
            raise AuthenticationRefused(e) from e
        if certificate is None:
            return None
        return GatewayPrincipal(gateway=certificate.gateway, certificate=certificate), None

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer error="invalid_token"'


class IsGateway(permissions.BasePermission):
    """Only gateways; a user's session or API token is not enough."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.user, GatewayPrincipal)


class GatewayAuthMiddleware:
    """Channels middleware: `scope["gateway"]` is the authenticated Gateway or None.

    On refusal `scope["gateway_auth_error"]` holds the protocol error code so the consumer can
    close with a useful reason (docs/protocol/identity.md: close code 4401).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        scope["gateway"] = None
        scope["gateway_certificate"] = None
        scope["gateway_auth_error"] = None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        peer = (scope.get("client") or (None, None))[0]
        try:
            certificate = await database_sync_to_async(_authenticate)(
                authorization=headers.get("authorization"), headers=headers, peer=peer, ip=peer
            )
        except IdentityError as e:
            scope["gateway_auth_error"] = e.code
        else:
            if certificate is None:
                scope["gateway_auth_error"] = "invalid_access_token"
            else:
                scope["gateway"] = certificate.gateway
                scope["gateway_certificate"] = certificate
        return await self.inner(scope, receive, send)
