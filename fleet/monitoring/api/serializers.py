from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from fleet.accounts.selectors import organizations_visible_to
from fleet.core.api import StrictFieldsMixin
from fleet.inventory.models import Organization
from fleet.monitoring.lifecycle import SEVERITY_RANK, Severity
from fleet.monitoring.models import (
    ALARM_LABELS,
    Alarm,
    AlarmTransition,
    LogEntry,
    MonitoringSettings,
    NotificationRoute,
    Silence,
    TelemetryLatest,
)


class AlarmSerializer(serializers.ModelSerializer[Alarm]):
    organization: serializers.SlugRelatedField[Organization] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    gateway_serial = serializers.CharField(source="gateway.serial", read_only=True)
    site_name = serializers.CharField(source="site.name", read_only=True, default="")
    shelved = serializers.SerializerMethodField()
    severity_rank = serializers.SerializerMethodField()
    acknowledged_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = Alarm
        fields = [
            "id",
            "organization",
            "gateway",
            "gateway_serial",
            "site",
            "site_name",
            "source",
            "code",
            "device",
            "severity",
            "severity_rank",
            "message",
            "details",
            "state",
            "occurrences",
            "raised_at",
            "last_raised_at",
            "cleared_at",
            "acknowledged_at",
            "acknowledged_by",
            "closed_at",
            "shelved",
            "shelved_until",
            "suppressed",
            "suppressed_reason",
            "out_of_service",
            "updated",
        ]
        read_only_fields = fields

    def get_shelved(self, alarm: Alarm) -> bool:
        return alarm.is_shelved(timezone.now())

    def get_severity_rank(self, alarm: Alarm) -> int:
        return SEVERITY_RANK[alarm.severity]


class AlarmTransitionSerializer(serializers.ModelSerializer[AlarmTransition]):
    class Meta:
        model = AlarmTransition
        fields = ["id", "at", "action", "from_state", "to_state", "actor_label", "comment", "detail"]
        read_only_fields = fields


class AlarmDetailSerializer(AlarmSerializer):
    transitions = AlarmTransitionSerializer(many=True, read_only=True)

    class Meta(AlarmSerializer.Meta):
        fields = [*AlarmSerializer.Meta.fields, "transitions"]
        read_only_fields = fields


class AlarmActionSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ShelveSerializer(AlarmActionSerializer):
    duration_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60)


class CommentSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(max_length=2000)


class BulkAcknowledgeSerializer(AlarmActionSerializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)


class LogEntrySerializer(serializers.ModelSerializer[LogEntry]):
    gateway_serial = serializers.CharField(source="gateway.serial", read_only=True)

    class Meta:
        model = LogEntry
        fields = ["id", "gateway", "gateway_serial", "seq", "ts", "received_at", "level", "logger", "message", "fields"]
        read_only_fields = fields


class TelemetryLatestSerializer(serializers.ModelSerializer[TelemetryLatest]):
    class Meta:
        model = TelemetryLatest
        fields = ["gateway", "device", "point", "ts", "value"]
        read_only_fields = fields


class OrganizationSlugField(serializers.SlugRelatedField[Organization]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", **kwargs)

    def get_queryset(self) -> Any:
        request = self.context.get("request")
        return organizations_visible_to(getattr(request, "user", None))


class MonitoringSettingsSerializer(StrictFieldsMixin, serializers.ModelSerializer[MonitoringSettings]):
    organization = OrganizationSlugField()
    log_retention_days = serializers.IntegerField(min_value=1, max_value=3650, default=30)
    telemetry_retention_days = serializers.IntegerField(min_value=1, max_value=3650, default=90)
    offline_after_seconds = serializers.IntegerField(min_value=60, max_value=7 * 86400, allow_null=True, required=False)
    max_shelve_hours = serializers.IntegerField(min_value=1, max_value=24 * 30, default=24)

    class Meta:
        model = MonitoringSettings
        fields = [
            "id",
            "organization",
            "log_retention_days",
            "telemetry_retention_days",
            "offline_after_seconds",
            "max_shelve_hours",
        ]


class NotificationRouteSerializer(StrictFieldsMixin, serializers.ModelSerializer[NotificationRoute]):
    organization = OrganizationSlugField()
    severities = serializers.ListField(child=serializers.ChoiceField(choices=Severity.choices), required=False)
    group_by = serializers.ListField(child=serializers.ChoiceField(choices=ALARM_LABELS), required=False)

    class Meta:
        model = NotificationRoute
        fields = [
            "id",
            "organization",
            "name",
            "channel",
            "target",
            "secret",
            "severities",
            "group_by",
            "group_wait_seconds",
            "group_interval_seconds",
            "repeat_interval_seconds",
            "enabled",
        ]
        extra_kwargs = {"secret": {"write_only": True}}


class SilenceSerializer(StrictFieldsMixin, serializers.ModelSerializer[Silence]):
    organization = OrganizationSlugField()
    matchers = serializers.DictField(child=serializers.CharField(max_length=200, allow_blank=True), allow_empty=False)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Silence
        fields = ["id", "organization", "matchers", "starts_at", "ends_at", "comment", "created_by", "created"]
        read_only_fields = ["created_by", "created"]

    def validate_matchers(self, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(ALARM_LABELS))
        if unknown:
            raise serializers.ValidationError(f"Unknown labels {unknown}; use {', '.join(ALARM_LABELS)}.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        starts = attrs.get("starts_at", getattr(self.instance, "starts_at", None))
        ends = attrs.get("ends_at", getattr(self.instance, "ends_at", None))
        if starts and ends and ends <= starts:
            raise serializers.ValidationError({"ends_at": "must be after starts_at."})
        return attrs
