"""The operator UI: console, alarm detail and its actions, logs, telemetry, the gateway page panel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from fleet.inventory.models import Gateway
from fleet.monitoring import services
from fleet.monitoring.lifecycle import AlarmState
from fleet.monitoring.models import Alarm
from fleet.monitoring.services import IncomingRecord
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db


def browser_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def gateway(organization: Any) -> Gateway:
    return GatewayFactory(organization=organization)


def raise_alarm(gateway: Gateway, code: str, severity: str = "critical") -> Alarm:
    alarm = services.report_condition(
        gateway=gateway,
        source="device:INV-1",
        code=code,
        severity=severity,
        raised=True,
        message=f"{code} happened",
        at=timezone.now(),
        device="INV-1",
    )
    assert alarm is not None
    return alarm


def test_console_lists_open_alarms_of_the_users_organizations(
    users: dict[str, Any], gateway: Gateway, other_organization: Any
) -> None:
    raise_alarm(gateway, "ground_fault")
    raise_alarm(GatewayFactory(organization=other_organization), "foreign_fault")
    page = browser_for(users["viewer"]).get("/monitoring/alarms/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ground_fault" in html and "foreign_fault" not in html
    assert 'name="ids"' not in html  # viewers get no triage controls


def test_console_filters_and_partial_table(users: dict[str, Any], gateway: Gateway) -> None:
    raise_alarm(gateway, "ground_fault", "critical")
    raise_alarm(gateway, "fan_noise", "minor")
    client = browser_for(users["operator"])
    html = client.get("/monitoring/alarms/?severity=minor&partial=1").content.decode()
    assert "fan_noise" in html and "ground_fault" not in html
    assert "<html" not in html  # just the table, for the live refresh
    assert 'name="ids"' in html
    elsewhere = GatewayFactory(organization=gateway.organization)
    raise_alarm(elsewhere, "meter_offline")
    html = client.get(f"/monitoring/alarms/?site={elsewhere.site_id}").content.decode()
    assert "meter_offline" in html and "fan_noise" not in html
    assert f'<option value="{elsewhere.site_id}" selected>' in html


def test_bulk_acknowledge_from_the_console(users: dict[str, Any], gateway: Gateway) -> None:
    first, second = raise_alarm(gateway, "a"), raise_alarm(gateway, "b")
    client = browser_for(users["operator"])
    response = client.post(
        "/monitoring/alarms/bulk/",
        {"ids": [first.pk, second.pk], "comment": "on it", "action": "acknowledge"},
        follow=True,
    )
    assert "Acknowledged 2 alarm(s)." in response.content.decode()
    assert set(Alarm.objects.values_list("state", flat=True)) == {AlarmState.ACTIVE_ACKNOWLEDGED}
    assert browser_for(users["viewer"]).post("/monitoring/alarms/bulk/", {"ids": [first.pk]}).status_code == 403


def test_bulk_shelve_and_comment_from_the_console(users: dict[str, Any], gateway: Gateway) -> None:
    first, second = raise_alarm(gateway, "a"), raise_alarm(gateway, "b")
    client = browser_for(users["operator"])
    shelved = client.post(
        "/monitoring/alarms/bulk/",
        {"ids": [first.pk, second.pk], "action": "shelve", "duration_minutes": "60"},
        follow=True,
    ).content.decode()
    assert "Shelved 2 alarm(s)." in shelved
    assert all(a.is_shelved(timezone.now()) for a in Alarm.objects.all())
    again = client.post(
        "/monitoring/alarms/bulk/", {"ids": [first.pk], "action": "shelve", "duration_minutes": "60"}, follow=True
    ).content.decode()
    assert f"Alarm {first.pk}: The alarm is already shelved" in again
    empty = client.post("/monitoring/alarms/bulk/", {"ids": [first.pk], "action": "comment"}, follow=True)
    assert "A comment cannot be empty." in empty.content.decode()
    client.post("/monitoring/alarms/bulk/", {"ids": [first.pk, second.pk], "action": "comment", "comment": "storm"})
    assert {a.transitions.last().comment for a in Alarm.objects.all()} == {"storm"}


def test_alarm_detail_shows_the_timeline_and_the_gateways_recent_logs(users: dict[str, Any], gateway: Gateway) -> None:
    alarm = raise_alarm(gateway, "ground_fault")
    services.store_logs(
        gateway=gateway,
        records=[IncomingRecord(seq=1, ts=timezone.now(), payload={"level": "error", "message": "isolation fault"})],
        received_at=timezone.now(),
    )
    client = browser_for(users["operator"])
    response = client.post(f"/monitoring/alarms/{alarm.pk}/shelve/", {"duration_minutes": "60", "comment": "storm"})
    assert response.status_code == 302
    html = client.get(f"/monitoring/alarms/{alarm.pk}/").content.decode()
    assert "isolation fault" in html and "storm" in html and "shelve" in html
    alarm.refresh_from_db()
    assert alarm.is_shelved(timezone.now() + timedelta(minutes=59))


def test_a_refused_action_is_explained_on_the_detail_page(users: dict[str, Any], gateway: Gateway) -> None:
    alarm = raise_alarm(gateway, "ground_fault")
    client = browser_for(users["operator"])
    client.post(f"/monitoring/alarms/{alarm.pk}/acknowledge/")
    page = client.post(f"/monitoring/alarms/{alarm.pk}/acknowledge/", follow=True).content.decode()
    assert "The alarm is already acknowledged." in page
    page = client.post(f"/monitoring/alarms/{alarm.pk}/shelve/", {"duration_minutes": "x"}, follow=True)
    assert "whole number of minutes" in page.content.decode()
    assert client.post(f"/monitoring/alarms/{alarm.pk}/explode/").status_code == 404
    assert browser_for(users["viewer"]).post(f"/monitoring/alarms/{alarm.pk}/acknowledge/").status_code == 403


def test_log_pages_filter_and_stay_within_the_organization(
    users: dict[str, Any], gateway: Gateway, other_organization: Any
) -> None:
    now = timezone.now()
    services.store_logs(
        gateway=gateway,
        records=[
            IncomingRecord(seq=1, ts=now, payload={"level": "info", "message": "poll ok"}),
            IncomingRecord(seq=2, ts=now, payload={"level": "error", "message": "modbus timeout"}),
        ],
        received_at=now,
    )
    client = browser_for(users["viewer"])
    html = client.get("/monitoring/logs/?min_level=error").content.decode()
    assert "modbus timeout" in html and "poll ok" not in html
    html = client.get(f"/monitoring/gateways/{gateway.pk}/logs/?q=poll").content.decode()
    assert "poll ok" in html and "modbus timeout" not in html and "/ws/console/" in html
    foreign = GatewayFactory(organization=other_organization)
    assert client.get(f"/monitoring/gateways/{foreign.pk}/logs/").status_code == 404


def test_gateway_page_shows_open_alarms_and_a_telemetry_chart(users: dict[str, Any], gateway: Gateway) -> None:
    raise_alarm(gateway, "ground_fault")
    now = timezone.now()
    services.store_telemetry(
        gateway=gateway,
        records=[
            IncomingRecord(
                seq=i, ts=now - timedelta(minutes=10 - i), payload={"device": "INV-1", "points": {"W": 100.0 * i}}
            )
            for i in range(5)
        ],
    )
    html = browser_for(users["viewer"]).get(f"/gateways/{gateway.pk}/").content.decode()
    assert "Open alarms" in html and "ground_fault" in html
    assert "<polyline" in html and "INV-1 · W" in html
    page = browser_for(users["viewer"]).get(
        f"/monitoring/gateways/{gateway.pk}/telemetry/?device=INV-1&point=W&hours=1"
    )
    assert page.status_code == 200 and "<polyline" in page.content.decode()


def test_commands_from_the_gateway_page(users: dict[str, Any], gateway: Gateway) -> None:
    from fleet.uplink.models import Command

    operator = browser_for(users["operator"])
    page = operator.post(f"/uplink/gateways/{gateway.pk}/commands/", {"name": "check_updates"}, follow=True)
    assert f"check_updates sent to {gateway.serial}" in page.content.decode()
    assert "Check for updates now" in page.content.decode()
    assert Command.objects.get().name == "check_updates"
    viewer = browser_for(users["viewer"])
    refused = viewer.post(f"/uplink/gateways/{gateway.pk}/commands/", {"name": "reboot"}, follow=True).content.decode()
    assert "does not allow" in refused
    odd = operator.post(f"/uplink/gateways/{gateway.pk}/commands/", {"name": "open_tunnel"}, follow=True)
    assert "cannot be sent from this page" in odd.content.decode()
    assert Command.objects.count() == 1


def test_open_alarm_summary_for_the_dashboard(users: dict[str, Any], gateway: Gateway, other_organization: Any) -> None:
    raise_alarm(gateway, "a", "critical")
    raise_alarm(gateway, "b", "minor")
    raise_alarm(GatewayFactory(organization=other_organization), "c", "critical")
    html = browser_for(users["viewer"]).get("/monitoring/alarms/summary/").content.decode()
    assert ">2</a>" in html and "1 critical" in html and "1 minor" in html
