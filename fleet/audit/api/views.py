from django.db.models import QuerySet
from rest_framework import viewsets

from fleet.accounts.roles import Capability
from fleet.audit.filtersets import AuditEntryFilterSet
from fleet.audit.models import AuditEntry
from fleet.audit.selectors import audit_entries_visible_to

from .serializers import AuditEntrySerializer


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet[AuditEntry]):
    """The append-only audit trail: read and filter, never write."""

    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    read_capability = Capability.VIEW_AUDIT
    search_fields = ["action", "actor_label", "target_repr"]
    ordering_fields = ["timestamp", "action"]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return audit_entries_visible_to(self.request.user).select_related("organization")
