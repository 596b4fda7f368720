"""Retention per organization, and daily partitions on PostgreSQL (created ahead, dropped by age)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from fleet.monitoring import partitions
from fleet.monitoring.models import LogEntry, MonitoringSettings, TelemetrySample
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")


def add_log(gateway: Any, age: timedelta) -> LogEntry:
    now = timezone.now()
    return LogEntry.objects.create(
        gateway=gateway, seq=1, ts=now - age, received_at=now, level="info", message=f"{age} old"
    )


def test_retention_is_configurable_per_organization(organization: Any, other_organization: Any) -> None:
    MonitoringSettings.objects.create(organization=organization, log_retention_days=7, telemetry_retention_days=7)
    short, default = GatewayFactory(organization=organization), GatewayFactory(organization=other_organization)
    for gateway in (short, default):
        add_log(gateway, timedelta(days=1))
        add_log(gateway, timedelta(days=10))
        add_log(gateway, timedelta(days=40))
        TelemetrySample.objects.create(
            gateway=gateway, device="INV-1", point="W", ts=timezone.now() - timedelta(days=10), value=1
        )
    result = partitions.apply_retention(now=timezone.now())
    assert sorted(LogEntry.objects.filter(gateway=short).values_list("message", flat=True)) == ["1 day, 0:00:00 old"]
    assert LogEntry.objects.filter(gateway=default).count() == 2  # the default keeps 30 days
    assert TelemetrySample.objects.filter(gateway=short).count() == 0
    assert TelemetrySample.objects.filter(gateway=default).count() == 1  # telemetry default: 90 days
    assert result.deleted_rows == 4


@postgresql_only
def test_log_and_telemetry_tables_are_partitioned_by_day_ahead_of_time(organization: Any) -> None:
    today = timezone.now().date()
    partitions.ensure_partitions(today=today)
    for table in partitions.PARTITIONED:
        days = partitions.existing_partitions(table)
        assert all(today + timedelta(days=n) in days for n in range(partitions.DAYS_AHEAD + 1))
    entry = add_log(GatewayFactory(organization=organization), timedelta(seconds=1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM monitoring_logentry WHERE id = %s", [entry.pk])
        assert cursor.fetchone()[0] == partitions.partition_name("monitoring_logentry", entry.ts.date())


@postgresql_only
@pytest.mark.django_db(transaction=True)  # as in production: the rows were committed long before
def test_partitions_older_than_every_retention_are_dropped(organization: Any) -> None:
    now = timezone.now()
    old_day = (now - timedelta(days=45)).date()
    partitions.ensure_partitions(today=old_day, days_ahead=0)
    gateway = GatewayFactory(organization=organization)
    add_log(gateway, timedelta(days=45))
    add_log(gateway, timedelta(days=2))
    result = partitions.maintain_partitions(now=now)
    assert partitions.partition_name("monitoring_logentry", old_day) in result.dropped_partitions
    assert old_day not in partitions.existing_partitions("monitoring_logentry")
    assert LogEntry.objects.filter(gateway=gateway).count() == 1


def test_admins_set_retention_and_thresholds_per_organization_through_the_api(
    users: dict[str, Any], organization: Any, api_client_for: Any
) -> None:
    url = "/api/monitoring/settings/"
    body = {"organization": organization.slug, "log_retention_days": 7, "offline_after_seconds": 300}
    assert api_client_for(users["operator"]).post(url, body, format="json").status_code == 403
    admin = api_client_for(users["admin"])
    created = admin.post(url, body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["telemetry_retention_days"] == 90
    assert admin.post(url, body, format="json").status_code == 400  # one row per organization
    assert (
        "log_retention_days"
        in admin.patch(f"{url}{created.json()['id']}/", {"log_retention_days": 0}, format="json").json()["fields"]
    )
    settings_row = MonitoringSettings.objects.get(organization=organization)
    assert settings_row.log_retention_days == 7 and settings_row.offline_after.total_seconds() == 300
    assert api_client_for(users["viewer"]).get(url).json()["count"] == 1
