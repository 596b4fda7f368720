"""Gateway-facing update endpoints under /gw/v1/ (docs/protocol/updates.md section 2)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from pki.authentication import GatewayPrincipal, GatewayTokenAuthentication, IsGateway
from pki.gateway_views import GatewayAPIView

from . import services
from .repo import LICENSE, get_keyring
from .tuf.keys import key_to_json
from .tuf.layout import device_target_path


def _tuf_base(request: Request) -> str:
    configured = settings.GRIDFLEET_TUF_PUBLIC_URL
    return configured.rstrip("/") + "/" if configured else request.build_absolute_uri("/tuf/")


class UpdateChannelView(GatewayAPIView):
    """Where this gateway's assignment lives and where to fetch the repository from."""

    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def get(self, request: Request) -> Response:
        principal = cast(GatewayPrincipal, request.user)
        channel = services.ensure_channel(gateway=principal.gateway)
        keyring = get_keyring()
        keyring.ensure([LICENSE])
        body: dict[str, Any] = {
            "token": channel.token,
            "assignment_target": device_target_path(channel.token, "assignment.json"),
            "metadata_url": _tuf_base(request) + "metadata/",
            "targets_url": _tuf_base(request) + "targets/",
            "license_public_key": key_to_json(keyring.public_key(LICENSE)),
        }
        return Response(body)
