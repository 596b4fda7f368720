from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action as drf_action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.accounts.api.viewsets import AuditedModelViewSet
from fleet.accounts.roles import Capability
from fleet.audit.services import request_ip
from fleet.core.timestamps import parse_rfc3339, rfc3339
from fleet.inventory.selectors import gateways_visible_to
from fleet.monitoring import selectors, services
from fleet.monitoring.filtersets import AlarmFilterSet, LogEntryFilterSet
from fleet.monitoring.lifecycle import Action
from fleet.monitoring.models import Alarm

from .serializers import (
    AlarmActionSerializer,
    AlarmDetailSerializer,
    AlarmSerializer,
    BulkAcknowledgeSerializer,
    CommentSerializer,
    LogEntrySerializer,
    MonitoringSettingsSerializer,
    NotificationRouteSerializer,
    ShelveSerializer,
    SilenceSerializer,
    TelemetryLatestSerializer,
)


class AlarmViewSet(viewsets.ReadOnlyModelViewSet[Alarm]):
    """Alarms of the user's organizations. Viewers read; operators acknowledge, shelve, comment..."""

    read_capability = Capability.VIEW
    filterset_class = AlarmFilterSet
    search_fields = ["code", "message", "gateway__serial", "device"]
    ordering_fields = ["last_raised_at", "raised_at", "severity_rank", "state", "occurrences", "code"]
    ordering = ["severity_rank", "-last_raised_at"]

    def get_queryset(self) -> QuerySet[Alarm]:
        return selectors.alarms_visible_to(self.request.user)

    def get_serializer_class(self) -> Any:
        return AlarmDetailSerializer if self.action == "retrieve" else AlarmSerializer

    @extend_schema(request=BulkAcknowledgeSerializer, responses=dict)
    @drf_action(detail=False, methods=["post"], url_path="bulk-acknowledge")
    def bulk_acknowledge(self, request: Request) -> Response:
        form = BulkAcknowledgeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ids = form.validated_data["ids"]
        alarms = list(self.get_queryset().filter(pk__in=ids))
        unknown = sorted(set(ids) - {a.pk for a in alarms})
        if unknown:
            return Response(
                {"ids": [f"No such alarm: {', '.join(map(str, unknown))}."]}, status=status.HTTP_400_BAD_REQUEST
            )
        result = services.apply_to_alarms(
            alarms=alarms,
            action=Action.ACKNOWLEDGE,
            user=request.user,
            comment=form.validated_data["comment"],
            ip=request_ip(request),
        )
        return Response({"acknowledged": [a.pk for a in result.done], "refused": result.refused})


# The request body of each operator action (the rest take an optional comment).
ACTION_FORMS: dict[Action, type[serializers.Serializer[Any]]] = {
    Action.SHELVE: ShelveSerializer,
    Action.COMMENT: CommentSerializer,
}


def _alarm_action(action: Action) -> Any:
    """POST /api/monitoring/alarms/<id>/<action>/: one service call, answered with the alarm."""
    form_class = ACTION_FORMS.get(action, AlarmActionSerializer)

    def run(self: AlarmViewSet, request: Request, pk: str | None = None) -> Response:
        alarm = self.get_object()  # another tenant's alarm is a 404 whatever the body says
        form = form_class(data=request.data)
        form.is_valid(raise_exception=True)
        minutes = form.validated_data.get("duration_minutes")
        alarm = services.act_on_alarm(
            alarm=alarm,
            action=action,
            user=request.user,
            comment=form.validated_data.get("comment", ""),
            shelve_for=timedelta(minutes=minutes) if minutes else None,
            ip=request_ip(request),
        )
        return Response(AlarmDetailSerializer(alarm, context={"request": request}).data)

    run.__name__ = action.value
    run.__doc__ = f"{action.label} (ISA-18.2); the answer is the alarm as it is now."
    decorated = drf_action(detail=True, methods=["post"], url_path=action.value.replace("_", "-"))(run)
    return extend_schema(request=form_class, responses=AlarmDetailSerializer)(decorated)


for _action in services.OPERATOR_ACTIONS.values():
    setattr(AlarmViewSet, _action.value, _alarm_action(_action))


class LogCursorPagination(CursorPagination):
    ordering = ("-ts", "-id")
    page_size = 100


class LogEntryViewSet(viewsets.ReadOnlyModelViewSet[Any]):
    """Gateway logs, newest first, with cursor pagination (stable under a live stream of inserts)."""

    serializer_class = LogEntrySerializer
    filterset_class = LogEntryFilterSet
    pagination_class = LogCursorPagination
    ordering = ["-ts", "-id"]
    ordering_fields: list[str] = []
    search_fields = ["message", "logger"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.logs_visible_to(self.request.user)


class TelemetryLatestViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Any]):
    """Latest value of every point; filter with ?gateway=<id>&device=<key>."""

    serializer_class = TelemetryLatestSerializer
    filterset_fields = ["gateway", "device", "point"]
    pagination_class = None

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.telemetry_latest_visible_to(self.request.user).order_by("gateway", "device", "point")


class TimestampField(serializers.Field[datetime, str, str, Any]):
    """An RFC 3339 timestamp with an offset, e.g. 2026-11-26T13:00:00Z."""

    def to_internal_value(self, data: Any) -> datetime:
        try:
            return parse_rfc3339(data)
        except ValueError as exc:
            raise serializers.ValidationError(f"{exc} (RFC 3339, e.g. 2026-11-26T13:00:00Z)") from None

    def to_representation(self, value: datetime) -> str:
        return rfc3339(value)


class SeriesQuerySerializer(serializers.Serializer[Any]):
    gateway = serializers.IntegerField()
    device = serializers.CharField(max_length=200)
    point = serializers.CharField(max_length=64)
    since = TimestampField(required=False, help_text="default: 24 h before until")
    until = TimestampField(required=False, help_text="default: now")
    max_points = serializers.IntegerField(min_value=2, max_value=5000, default=500)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("until", timezone.now())
        attrs.setdefault("since", attrs["until"] - timedelta(hours=24))
        if attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"since": "must be before until."})
        return attrs


class TelemetrySeriesView(APIView):
    """A point over time, downsampled to at most max_points buckets (avg/min/max per bucket)."""

    read_capability = Capability.VIEW

    @extend_schema(
        parameters=[
            OpenApiParameter(name, str, required=name in {"gateway", "device", "point"})
            for name in ("gateway", "device", "point", "since", "until", "max_points")
        ],
        responses=dict,
    )
    def get(self, request: Request) -> Response:
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        gateway = get_object_or_404(gateways_visible_to(request.user), pk=q["gateway"])
        bucket, points = selectors.telemetry_series(
            gateway=gateway,
            device=q["device"],
            point=q["point"],
            since=q["since"],
            until=q["until"],
            max_points=q["max_points"],
        )
        return Response(
            {
                "gateway": gateway.pk,
                "device": q["device"],
                "point": q["point"],
                "since": q["since"],
                "until": q["until"],
                "bucket_seconds": bucket,
                "points": [{"ts": p.ts, "avg": p.avg, "min": p.min, "max": p.max, "count": p.count} for p in points],
            }
        )


class MonitoringSettingsViewSet(AuditedModelViewSet):
    """Per organization: log and telemetry retention, the offline threshold, the longest shelving.

    Organizations without settings use the defaults (30 and 90 days, GATEWAY_OFFLINE_AFTER, 24 h).
    """

    selector = staticmethod(selectors.monitoring_settings_visible_to)
    serializer_class = MonitoringSettingsSerializer
    read_capability = Capability.VIEW


class NotificationRouteViewSet(AuditedModelViewSet):
    """Where alarm notifications go; admins manage them."""

    selector = staticmethod(selectors.notification_routes_visible_to)
    serializer_class = NotificationRouteSerializer
    read_capability = Capability.VIEW


class SilenceViewSet(AuditedModelViewSet):
    """Time-boxed silences of notifications (not of the console); operators manage them."""

    selector = staticmethod(selectors.silences_visible_to)
    serializer_class = SilenceSerializer
    read_capability = Capability.VIEW

    def perform_create(self, serializer: Any) -> None:
        serializer.validated_data["created_by"] = self.request.user
        super().perform_create(serializer)
