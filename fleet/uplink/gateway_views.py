"""Gateway-facing HTTP endpoint of the uplink: the file upload answering an `upload_logs` command.

`PUT /gw/v1/logs/<command id>` with the gateway's bearer token and the gzip'd logs as the body
(docs/protocol/uplink.md, section 2.6). The body is streamed to disk, never held in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast
from uuid import UUID

from django.conf import settings
from django.db import transaction
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.audit.services import record as audit
from fleet.audit.services import request_ip
from fleet.core.errors import ConflictError, DomainError, NotFoundError
from pki.authentication import GatewayPrincipal, GatewayTokenAuthentication, IsGateway
from pki.gateway_views import GatewayAPIView

from .models import Command
from .protocol import CommandName

MAX_LOG_UPLOAD_BYTES = 64 * 1024 * 1024
CHUNK = 64 * 1024
OPEN_STATES = (Command.State.PENDING, Command.State.SENT, Command.State.ACCEPTED)


def upload_path(command: Command) -> Path:
    return Path(settings.GRIDFLEET_VAR_DIR) / "log-uploads" / command.gateway.serial / f"{command.pk}.gz"


class LogUploadView(GatewayAPIView):
    authentication_classes = [GatewayTokenAuthentication]
    permission_classes = [IsGateway]

    def put(self, request: Request, command_id: UUID) -> Response:
        gateway = cast(GatewayPrincipal, request.user).gateway
        command = Command.objects.filter(pk=command_id, gateway=gateway, name=CommandName.UPLOAD_LOGS).first()
        if command is None:
            raise NotFoundError("No upload_logs command with this id for this gateway.", code="unknown_command")
        if command.state not in OPEN_STATES:
            raise ConflictError(f"The command is {command.state}; start a new upload_logs.", code="command_closed")
        path = upload_path(command)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with path.open("wb") as target:
            while chunk := request._request.read(CHUNK):
                size += len(chunk)
                if size > MAX_LOG_UPLOAD_BYTES:
                    target.close()
                    path.unlink()
                    raise DomainError(
                        f"Log uploads are limited to {MAX_LOG_UPLOAD_BYTES} bytes.",
                        code="too_large",
                        status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                    )
                digest.update(chunk)
                target.write(chunk)
        upload = {"bytes": size, "sha256": digest.hexdigest()}
        with transaction.atomic():
            command.result = {**(command.result or {}), "upload": upload}
            command.save(update_fields=["result"])
            audit(
                action="gateway.logs_uploaded",
                target=gateway,
                gateway=gateway,
                ip=request_ip(request),
                detail={"command_id": str(command.pk), **upload},
            )
        return Response(upload, status=status.HTTP_201_CREATED)
