"""WebSocket routes. Gateways and browsers are authenticated differently, so they get different stacks.

- Gateway routes (`/ws/gateway/...`) authenticate the device identity (pki) and skip the Origin
  check: agents are not browsers and send no Origin.
- Browser routes authenticate the session user and check Origin against ALLOWED_HOSTS, which is
  what stops another web site from opening a socket with the operator's cookies.
Apps append their routes to the two lists below.
"""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import URLPattern, URLResolver, re_path

gateway_websocket_urlpatterns: list[URLPattern | URLResolver] = []
browser_websocket_urlpatterns: list[URLPattern | URLResolver] = []


def _app_routes() -> None:
    from fleet.monitoring.routing import websocket_urlpatterns as monitoring_routes
    from fleet.remoteaccess.routing import gateway_websocket_urlpatterns as tunnel_routes
    from fleet.uplink.routing import websocket_urlpatterns as uplink_routes

    gateway_websocket_urlpatterns.extend(uplink_routes)
    gateway_websocket_urlpatterns.extend(tunnel_routes)
    browser_websocket_urlpatterns.extend(monitoring_routes)


_app_routes()


def gateway_stack(inner: Any) -> Any:
    from pki.authentication import GatewayAuthMiddleware

    return GatewayAuthMiddleware(inner)


def build_websocket_router() -> Any:
    from fleet.remoteaccess.routing import technician_stack

    return URLRouter(
        [
            re_path(r"^ws/gateway/", gateway_stack(URLRouter(gateway_websocket_urlpatterns))),
            re_path(r"^ws/remote/", technician_stack()),
            re_path(
                r"",
                AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(browser_websocket_urlpatterns))),
            ),
        ]
    )
