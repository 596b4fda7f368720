"""The model viewset of the user API whose writes go through the authorized, audited write services."""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets

from fleet.audit.services import request_ip
from fleet.core.api import SelectorQuerysetMixin

from ..services import create_object, delete_object, update_object


class AuditedModelViewSet(SelectorQuerysetMixin, viewsets.ModelViewSet[Any]):
    """Rows from a tenancy selector (`selector`); writes through `fleet.accounts.services`, which
    check the actor's capability in the owning organization and write the audit entry."""

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = create_object(
            serializer.Meta.model,
            data=serializer.validated_data,
            actor=self.request.user,
            ip=request_ip(self.request),
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = update_object(
            serializer.instance,
            data=serializer.validated_data,
            actor=self.request.user,
            ip=request_ip(self.request),
        )

    def perform_destroy(self, instance: Any) -> None:
        delete_object(instance, actor=self.request.user, ip=request_ip(self.request))
