"""Logs and telemetry through the REST API: filters, cursor pagination, tenancy, downsampling."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from fleet.inventory.models import Gateway
from fleet.monitoring import services
from fleet.monitoring.services import IncomingRecord
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db

T0 = NOON_PACIFIC.replace(hour=0, minute=0)


@pytest.fixture
def gateway(organization: Any) -> Gateway:
    return GatewayFactory(organization=organization)


def store_logs(gateway: Gateway, *entries: tuple[str, str], start: datetime = T0) -> None:
    services.store_logs(
        gateway=gateway,
        records=[
            IncomingRecord(seq=i + 1, ts=start + timedelta(seconds=i), payload={"level": level, "message": message})
            for i, (level, message) in enumerate(entries)
        ],
        received_at=timezone.now(),
    )


def store_points(gateway: Gateway, values: list[float], *, step: timedelta, device: str = "INV-1") -> None:
    services.store_telemetry(
        gateway=gateway,
        records=[
            IncomingRecord(seq=i + 1, ts=T0 + i * step, payload={"device": device, "points": {"W": v, "Hz": 60.0}})
            for i, v in enumerate(values)
        ],
    )


def test_logs_filter_by_level_text_and_time(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    store_logs(gateway, ("debug", "poll ok"), ("warning", "modbus timeout on INV-1"), ("error", "TUF refresh failed"))
    client = api_client_for(users["viewer"])

    def messages(query: str) -> list[str]:
        response = client.get(f"/api/monitoring/logs/?{query}")
        assert response.status_code == 200, response.json()
        return [entry["message"] for entry in response.json()["results"]]

    assert messages("") == ["TUF refresh failed", "modbus timeout on INV-1", "poll ok"]
    assert messages("min_level=warning") == ["TUF refresh failed", "modbus timeout on INV-1"]
    assert messages("level=debug") == ["poll ok"]
    assert messages("q=modbus") == ["modbus timeout on INV-1"]
    assert messages(f"until={(T0 + timedelta(seconds=1)).isoformat().replace('+00:00', 'Z')}") == ["poll ok"]
    assert messages(f"gateway_serial={gateway.serial}&min_level=error") == ["TUF refresh failed"]
    assert client.get("/api/monitoring/logs/?min_level=loud").status_code == 400


def test_logs_page_with_a_cursor(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    store_logs(gateway, *[("info", f"line {i}") for i in range(150)])
    client = api_client_for(users["viewer"])
    first = client.get("/api/monitoring/logs/").json()
    assert len(first["results"]) == 100 and first["results"][0]["message"] == "line 149"
    second = client.get(first["next"]).json()
    assert [e["message"] for e in second["results"]][-1] == "line 0" and second["next"] is None


def test_logs_and_telemetry_of_other_organizations_are_invisible(
    users: dict[str, Any], other_organization: Any, api_client_for: Any
) -> None:
    foreign = GatewayFactory(organization=other_organization)
    store_logs(foreign, ("error", "secret"))
    store_points(foreign, [1.0], step=timedelta(seconds=1))
    client = api_client_for(users["viewer"])
    assert client.get("/api/monitoring/logs/").json()["results"] == []
    assert client.get("/api/monitoring/telemetry/latest/").json() == []
    series = client.get(f"/api/monitoring/telemetry/series/?gateway={foreign.pk}&device=INV-1&point=W")
    assert series.status_code == 404


def test_latest_values_keep_the_newest_even_when_an_old_record_arrives_late(
    users: dict[str, Any], gateway: Gateway, api_client_for: Any
) -> None:
    store_points(gateway, [100.0, 200.0], step=timedelta(minutes=1))
    late = IncomingRecord(seq=99, ts=T0 - timedelta(hours=1), payload={"device": "INV-1", "points": {"W": 5.0}})
    services.store_telemetry(gateway=gateway, records=[late])
    latest = api_client_for(users["viewer"]).get(f"/api/monitoring/telemetry/latest/?gateway={gateway.pk}").json()
    assert {(row["point"], row["value"]) for row in latest} == {("W", 200.0), ("Hz", 60.0)}


def test_series_are_downsampled_into_buckets(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    # 2 hours of 10-second values: 720 samples, a ramp 0..719.
    store_points(gateway, [float(i) for i in range(720)], step=timedelta(seconds=10))
    client = api_client_for(users["viewer"])
    since, until = "2026-11-26T00:00:00Z", "2026-11-26T02:00:00Z"
    base = f"/api/monitoring/telemetry/series/?gateway={gateway.pk}&device=INV-1&point=W&since={since}&until={until}"
    body = client.get(f"{base}&max_points=12").json()
    assert body["bucket_seconds"] == 600
    assert len(body["points"]) == 12
    first = body["points"][0]
    assert (first["min"], first["max"], first["count"], first["avg"]) == (0.0, 59.0, 60, 29.5)
    assert body["points"][0]["ts"].startswith("2026-11-26T00:00:00")
    raw = client.get(f"{base}&max_points=1000").json()
    assert raw["bucket_seconds"] == 0 and len(raw["points"]) == 720


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("device=INV-1&point=W", "gateway"),
        ("gateway=1&point=W", "device"),
        ("gateway=1&device=x&point=W&since=yesterday", "since"),
        ("gateway=1&device=x&point=W&since=2026-11-26T02:00:00Z&until=2026-11-26T01:00:00Z", "since"),
        ("gateway=1&device=x&point=W&max_points=1", "max_points"),
    ],
)
def test_series_input_errors_are_400_naming_the_field(
    users: dict[str, Any], api_client_for: Any, query: str, field: str
) -> None:
    response = api_client_for(users["viewer"]).get(f"/api/monitoring/telemetry/series/?{query}")
    assert response.status_code == 400
    assert field in str(response.json())
