"""Daily range partitions of the log and telemetry tables on PostgreSQL, and retention.

Migration 0002 turns both tables into `PARTITION BY RANGE (ts)` parents with a DEFAULT partition
(which catches late or odd timestamps, so an insert never fails for want of a partition).
`maintain_partitions` creates the next days' partitions ahead of time and drops whole partitions
once they are older than the longest retention of any organization; organizations with a
shorter retention lose their older rows by a DELETE. On SQLite the tables are plain and retention
is only the DELETE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection as default_connection
from django.db import transaction

from .models import LogEntry, MonitoringSettings, TelemetrySample

DAYS_AHEAD = 7
PARTITIONED = {"monitoring_logentry": LogEntry, "monitoring_telemetrysample": TelemetrySample}

# Column for column what Django would create (models.py), but partitioned: the primary key has to
# include the partition key, and the id comes from an owned sequence.
CREATE_PARTITIONED_SQL = [
    "DROP TABLE monitoring_logentry",
    "CREATE SEQUENCE monitoring_logentry_id_seq",
    """CREATE TABLE monitoring_logentry (
        id bigint NOT NULL DEFAULT nextval('monitoring_logentry_id_seq'),
        gateway_id bigint NOT NULL REFERENCES inventory_gateway (id) DEFERRABLE INITIALLY DEFERRED,
        seq bigint NOT NULL,
        ts timestamp with time zone NOT NULL,
        received_at timestamp with time zone NOT NULL,
        level varchar(8) NOT NULL,
        logger varchar(200) NOT NULL,
        message text NOT NULL,
        fields jsonb NULL,
        PRIMARY KEY (id, ts)
    ) PARTITION BY RANGE (ts)""",
    "ALTER SEQUENCE monitoring_logentry_id_seq OWNED BY monitoring_logentry.id",
    "CREATE INDEX monitoring_log_gw_ts ON monitoring_logentry (gateway_id, ts)",
    "CREATE TABLE monitoring_logentry_default PARTITION OF monitoring_logentry DEFAULT",
    "DROP TABLE monitoring_telemetrysample",
    "CREATE SEQUENCE monitoring_telemetrysample_id_seq",
    """CREATE TABLE monitoring_telemetrysample (
        id bigint NOT NULL DEFAULT nextval('monitoring_telemetrysample_id_seq'),
        gateway_id bigint NOT NULL REFERENCES inventory_gateway (id) DEFERRABLE INITIALLY DEFERRED,
        device varchar(200) NOT NULL,
        point varchar(64) NOT NULL,
        ts timestamp with time zone NOT NULL,
        value double precision NOT NULL,
        PRIMARY KEY (id, ts)
    ) PARTITION BY RANGE (ts)""",
    "ALTER SEQUENCE monitoring_telemetrysample_id_seq OWNED BY monitoring_telemetrysample.id",
    "CREATE INDEX monitoring_tel_series ON monitoring_telemetrysample (gateway_id, device, point, ts)",
    "CREATE TABLE monitoring_telemetrysample_default PARTITION OF monitoring_telemetrysample DEFAULT",
]

_DAY_SUFFIX = re.compile(r"_p(\d{8})$")


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def is_partitioned(connection: Any = default_connection) -> bool:
    return bool(connection.vendor == "postgresql")


def existing_partitions(table: str, connection: Any = default_connection) -> dict[date, str]:
    """Daily partitions of `table` by their first day (the DEFAULT partition is not listed)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE parent.relname = %s",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = {}
    for name in names:
        match = _DAY_SUFFIX.search(name)
        if match:
            days[datetime.strptime(match.group(1) + "+0000", "%Y%m%d%z").date()] = name
    return days


def ensure_partitions(*, today: date, days_ahead: int = DAYS_AHEAD, connection: Any = default_connection) -> list[str]:
    """Create the partitions of today and the next `days_ahead` days that do not exist yet."""
    if not is_partitioned(connection):
        return []
    created = []
    for table in PARTITIONED:
        have = existing_partitions(table, connection)
        for offset in range(days_ahead + 1):
            day = today + timedelta(days=offset)
            if day in have:
                continue
            name = partition_name(table, day)
            # Identifiers cannot be bound parameters; both come from PARTITIONED and a date.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TABLE {name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
                )
            created.append(name)
    return created


@dataclass
class PartitionMaintenance:
    created_partitions: list[str] = field(default_factory=list)
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rows: int = 0


def _retention_days() -> tuple[dict[int, int], dict[int, int], int, int]:
    defaults = MonitoringSettings()
    rows = list(MonitoringSettings.objects.all())
    logs = {row.organization_id: row.log_retention_days for row in rows}
    telemetry = {row.organization_id: row.telemetry_retention_days for row in rows}
    return logs, telemetry, defaults.log_retention_days, defaults.telemetry_retention_days


def apply_retention(*, now: datetime) -> PartitionMaintenance:
    """Drop partitions past every organization's retention; delete older rows of shorter retentions."""
    logs, telemetry, log_default, telemetry_default = _retention_days()
    dropped: list[str] = []
    deleted = 0
    for model, per_org, default_days in (
        (LogEntry, logs, log_default),
        (TelemetrySample, telemetry, telemetry_default),
    ):
        longest = max([default_days, *per_org.values()])
        oldest_kept = now - timedelta(days=longest)
        if is_partitioned():
            table = model._meta.db_table
            for day, name in sorted(existing_partitions(table).items()):
                # A partition holds [day, day + 1): drop it once all of it is older than the cutoff.
                if datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo) <= oldest_kept:
                    with default_connection.cursor() as cursor:
                        cursor.execute(f"DROP TABLE {name}")
                    dropped.append(name)
        with transaction.atomic():
            # Whatever the partitions did not cover (the DEFAULT partition, SQLite, the boundary day).
            deleted += model.objects.filter(ts__lt=oldest_kept).delete()[0]
            for organization_id, days in per_org.items():
                if days < longest:
                    cutoff = now - timedelta(days=days)
                    shorter = model.objects.filter(gateway__organization_id=organization_id, ts__lt=cutoff)
                    deleted += shorter.delete()[0]
            if default_days < longest:
                cutoff = now - timedelta(days=default_days)
                unconfigured = model.objects.exclude(gateway__organization_id__in=list(per_org)).filter(ts__lt=cutoff)
                deleted += unconfigured.delete()[0]
    return PartitionMaintenance(dropped_partitions=dropped, deleted_rows=deleted)


def maintain_partitions(*, now: datetime) -> PartitionMaintenance:
    """Daily: partitions for the coming days, then retention."""
    created = ensure_partitions(today=now.date())
    result = apply_retention(now=now)
    result.created_partitions = created
    return result
