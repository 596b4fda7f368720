"""WebSocket routes of remote access.

The gateway's end is mounted with the other gateway routes (/ws/gateway/, device identity). The
technician's end is under /ws/remote/: the operator CLI authenticates with its API token
(`Authorization: Token <key>`, no cookies involved, so no Origin check is needed), a browser with
its login session, Origin checked against ALLOWED_HOSTS like every browser socket.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser
from django.urls import path

from .consumers import GatewayTunnelConsumer, TechnicianTunnelConsumer

gateway_websocket_urlpatterns = [path("v1/tunnel/<uuid:session_id>/", GatewayTunnelConsumer.as_asgi())]
technician_websocket_urlpatterns = [path("v1/sessions/<uuid:session_id>/", TechnicianTunnelConsumer.as_asgi())]


def _user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenOrSessionAuth:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.browser = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        if header.startswith(b"Token "):
            user = await database_sync_to_async(_user_for_token)(header[6:].decode("latin-1").strip())
            return await self.inner({**scope, "user": user}, receive, send)
        return await self.browser(scope, receive, send)


def technician_stack() -> Any:
    return TokenOrSessionAuth(URLRouter(technician_websocket_urlpatterns))
