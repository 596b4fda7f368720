"""Project-wide REST API pieces: the exception handler that keeps every error a clear 4xx."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, QuerySet
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from fleet.accounts.permissions import ensure_can
from fleet.accounts.roles import Capability
from fleet.audit.services import create_audited, delete_audited, request_ip, update_audited
from fleet.errors import DomainError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.field:
            body = {exc.field: [exc.message], "code": exc.code}
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large; send less data or split it into several requests."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, ProtectedError):
        blockers = sorted({str(obj) for obj in exc.protected_objects})[:5]
        return Response(
            {"detail": f"Cannot delete: still referenced by {', '.join(blockers)}. Remove or move those first."},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, IntegrityError):
        # A race past the serializer's uniqueness check; the row was not written.
        exc = exceptions.ValidationError({"detail": "This would duplicate an existing object."})
    return drf_exception_handler(exc, context)


class StrictFieldsMixin:
    """Refuse fields the serializer does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
            unknown = sorted(set(data) - known)
            if unknown:
                read_only = {name for name, field in self.fields.items() if field.read_only}  # type: ignore[attr-defined]
                raise exceptions.ValidationError(
                    {name: ["This field is read-only." if name in read_only else "Unknown field."] for name in unknown}
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class AuditedModelViewSet(viewsets.ModelViewSet):
    """A model viewset whose queryset comes from a tenancy selector and whose writes are audited.

    Subclasses set `selector` (a function of the user returning a queryset) and the serializer.
    """

    @staticmethod
    def selector(user: Any) -> QuerySet[Any]:
        raise NotImplementedError("Set `selector = staticmethod(<tenancy selector>)` on the viewset.")

    def get_queryset(self) -> QuerySet[Any]:
        return self.selector(self.request.user)

    write_capability: Capability = Capability.MANAGE_INVENTORY

    def _ensure_can_write(self, data: dict[str, Any]) -> None:
        """The organization the written object will belong to must allow the write, too."""
        organization = data.get("organization")
        if organization is None and data.get("gateway") is not None:
            organization = data["gateway"].organization
        if organization is not None:
            ensure_can(self.request.user, self.write_capability, organization)

    def perform_create(self, serializer: Any) -> None:
        self._ensure_can_write(serializer.validated_data)
        serializer.instance = create_audited(
            serializer.Meta.model, data=serializer.validated_data, user=self.request.user, ip=request_ip(self.request)
        )

    def perform_update(self, serializer: Any) -> None:
        self._ensure_can_write(serializer.validated_data)
        serializer.instance = update_audited(
            serializer.instance, data=serializer.validated_data, user=self.request.user, ip=request_ip(self.request)
        )

    def perform_destroy(self, instance: Any) -> None:
        delete_audited(instance, user=self.request.user, ip=request_ip(self.request))


def only_user_api_endpoints(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[Any]:
    """drf-spectacular hook: the OpenAPI document covers the user/integrator API under /api/.

    Gateway-facing endpoints (/gw/v1/, /tuf/, WebSockets) follow the versioned gateway protocol in docs/.
    """
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
