"""Reads for monitoring; tenancy is decided here (on top of fleet.accounts / fleet.inventory selectors)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Avg, Case, Count, IntegerField, Max, Min, QuerySet, Value, When
from django.db.models.expressions import Func

from fleet.accounts.selectors import organizations_visible_to
from fleet.inventory.models import Gateway

from .lifecycle import OPEN_STATES, SEVERITY_RANK
from .models import Alarm, LogEntry, MonitoringSettings, NotificationRoute, Silence, TelemetryLatest, TelemetrySample

SEVERITY_ORDER = Case(
    *[When(severity=severity, then=Value(rank)) for severity, rank in SEVERITY_RANK.items()],
    output_field=IntegerField(),
)


def alarms_visible_to(user: Any) -> QuerySet[Alarm]:
    return (
        Alarm.objects.filter(organization__in=organizations_visible_to(user))
        .select_related("organization", "gateway", "site", "acknowledged_by")
        .annotate(severity_rank=SEVERITY_ORDER)
    )


def open_alarm_counts(user: Any) -> dict[str, int]:
    """Open alarms by severity, for the dashboard."""
    rows = alarms_visible_to(user).filter(state__in=OPEN_STATES).values("severity").annotate(n=Count("id"))
    return {row["severity"]: row["n"] for row in rows}


def logs_visible_to(user: Any) -> QuerySet[LogEntry]:
    return LogEntry.objects.filter(gateway__organization__in=organizations_visible_to(user)).select_related("gateway")


def recent_logs(*, gateway: Gateway, limit: int = 50) -> list[LogEntry]:
    return list(LogEntry.objects.filter(gateway=gateway).order_by("-ts", "-id")[:limit])


def telemetry_latest_visible_to(user: Any) -> QuerySet[TelemetryLatest]:
    return TelemetryLatest.objects.filter(gateway__organization__in=organizations_visible_to(user))


class EpochBucket(Func):
    """floor(epoch seconds of `ts` / seconds): the downsampling bucket of a timestamp."""

    output_field = IntegerField()

    def __init__(self, expression: Any, seconds: int) -> None:
        super().__init__(expression)
        self.seconds = int(seconds)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        template = (
            "FLOOR(EXTRACT(EPOCH FROM %(expressions)s) / %(seconds)s)"
            if connection.vendor == "postgresql"
            else "CAST(strftime('%%%%s', %(expressions)s) AS INTEGER) / %(seconds)s"
        )
        ts_sql, ts_params = compiler.compile(self.source_expressions[0])
        return template % {"expressions": ts_sql, "seconds": self.seconds}, ts_params


@dataclass(frozen=True)
class SeriesPoint:
    ts: datetime
    avg: float
    min: float
    max: float
    count: int


def telemetry_series(
    *, gateway: Gateway, device: str, point: str, since: datetime, until: datetime, max_points: int = 500
) -> tuple[int, list[SeriesPoint]]:
    """The point's values in [since, until), averaged into at most `max_points` equal time buckets.

    Returns (bucket seconds, points). Bucket 0 means raw values (few enough to return as they are).
    """
    rows = TelemetrySample.objects.filter(gateway=gateway, device=device, point=point, ts__gte=since, ts__lt=until)
    if rows.count() <= max_points:
        return 0, [SeriesPoint(r.ts, r.value, r.value, r.value, 1) for r in rows.order_by("ts")]
    span = (until - since).total_seconds()
    bucket = max(1, int(-(-span // max_points)))
    grouped = (
        rows.annotate(bucket=EpochBucket("ts", bucket))
        .values("bucket")
        .annotate(avg=Avg("value"), min=Min("value"), max=Max("value"), count=Count("id"))
        .order_by("bucket")
    )
    return bucket, [
        SeriesPoint(datetime.fromtimestamp(int(g["bucket"]) * bucket, UTC), g["avg"], g["min"], g["max"], g["count"])
        for g in grouped
    ]


def notification_routes_visible_to(user: Any) -> QuerySet[NotificationRoute]:
    return NotificationRoute.objects.filter(organization__in=organizations_visible_to(user)).select_related(
        "organization"
    )


def silences_visible_to(user: Any) -> QuerySet[Silence]:
    return Silence.objects.filter(organization__in=organizations_visible_to(user)).select_related(
        "organization", "created_by"
    )


def monitoring_settings_visible_to(user: Any) -> QuerySet[MonitoringSettings]:
    return (
        MonitoringSettings.objects.filter(organization__in=organizations_visible_to(user))
        .select_related("organization")
        .order_by("organization__name")
    )
