from __future__ import annotations

from typing import Any

from rest_framework import serializers

from fleet.core.api import StrictFieldsMixin
from fleet.inventory.models import Gateway
from fleet.inventory.selectors import gateways_visible_to
from fleet.uplink.models import Command
from fleet.uplink.protocol import CommandName


class VisibleGatewayField(serializers.PrimaryKeyRelatedField[Gateway]):
    def get_queryset(self) -> Any:
        request = self.context.get("request")
        return gateways_visible_to(getattr(request, "user", None))


class CommandSerializer(StrictFieldsMixin, serializers.ModelSerializer[Command]):
    gateway = VisibleGatewayField()
    name = serializers.ChoiceField(choices=[c.value for c in CommandName])
    args = serializers.DictField(required=False, default=dict)
    ttl_seconds = serializers.IntegerField(min_value=10, max_value=7 * 86400, default=900, write_only=True)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Command
        fields = [
            "id",
            "gateway",
            "name",
            "args",
            "ttl_seconds",
            "state",
            "created",
            "created_by",
            "expires_at",
            "sent_at",
            "completed_at",
            "result_message",
            "result",
        ]
        read_only_fields = [
            "id",
            "state",
            "created",
            "created_by",
            "expires_at",
            "sent_at",
            "completed_at",
            "result_message",
            "result",
        ]
