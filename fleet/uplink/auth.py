"""The one place the uplink decides whether a WebSocket peer is a gateway allowed to stream."""

from __future__ import annotations

from typing import Any

from fleet.inventory.models import Gateway


def gateway_from_scope(scope: dict[str, Any]) -> tuple[Gateway | None, str]:
    """(gateway, "") when the peer authenticated as a usable gateway, else (None, error code).

    pki.authentication.GatewayAuthMiddleware (wired in fleet.routing) fills `scope["gateway"]`
    from the bearer token, or `scope["gateway_auth_error"]` with the identity protocol's code.
    """
    gateway = scope.get("gateway")
    if gateway is None:
        return None, scope.get("gateway_auth_error") or "invalid_access_token"
    if gateway.status == Gateway.Status.DECOMMISSIONED:
        return None, "gateway_decommissioned"
    return gateway, ""
