from typing import Any

from rest_framework import serializers

from fleet.audit.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "timestamp",
            "action",
            "actor_label",
            "actor_user",
            "actor_gateway",
            "organization",
            "target_type",
            "target_id",
            "target_repr",
            "before",
            "after",
            "detail",
            "ip",
        ]
        read_only_fields: Any = fields
