"""The model viewset of the user API whose writes go through the audited write services."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import viewsets

from fleet.accounts.permissions import ensure_can
from fleet.accounts.roles import Capability
from fleet.audit.services import create_audited, delete_audited, request_ip, update_audited


class AuditedModelViewSet(viewsets.ModelViewSet[Any]):
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
