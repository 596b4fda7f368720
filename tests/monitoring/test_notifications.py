"""Alarm notifications: Alertmanager-style grouping with injected time, silences, signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail

from fleet.inventory.models import Gateway
from fleet.monitoring import notifications, services
from fleet.monitoring.lifecycle import Action
from fleet.monitoring.models import Alarm, NotificationDelivery, NotificationRoute, Silence
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db

T0 = NOON_PACIFIC.replace(hour=13, minute=0)


@pytest.fixture
def gateway(organization: Any) -> Gateway:
    return GatewayFactory(organization=organization, status=Gateway.Status.ACTIVE)


@pytest.fixture
def route(organization: Any) -> NotificationRoute:
    return NotificationRoute.objects.create(
        organization=organization,
        name="on-call",
        channel="email",
        target="oncall@example.com, lead@example.com",
        severities=["critical", "major"],
        group_by=["gateway"],
    )


def raise_at(gateway: Gateway, code: str, at: datetime, severity: str = "critical", raised: bool = True) -> Alarm:
    alarm = services.report_condition(
        gateway=gateway,
        source="device:INV-1",
        code=code,
        severity=severity,
        raised=raised,
        message=code,
        at=at,
        device="INV-1",
    )
    assert alarm is not None
    # In production this runs on commit with the wall clock; here time is injected.
    notifications.alarm_changed(alarm_id=alarm.pk, now=at)
    return alarm


def flush(at: datetime) -> list[NotificationDelivery]:
    return notifications.flush_notifications(now=at)


def test_the_first_notification_waits_group_wait_and_carries_the_whole_group(
    gateway: Gateway, route: NotificationRoute
) -> None:
    raise_at(gateway, "ground_fault", T0)
    raise_at(gateway, "dc_over_voltage", T0 + timedelta(seconds=10))
    assert flush(T0 + timedelta(seconds=29)) == []
    [delivery] = flush(T0 + timedelta(seconds=30))
    assert (delivery.firing, delivery.resolved, delivery.ok) == (2, 0, True)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["oncall@example.com", "lead@example.com"]
    assert "2 firing" in message.subject and f"gateway={gateway.serial}" in message.subject
    assert "ground_fault" in message.body and "dc_over_voltage" in message.body


def test_groups_are_formed_by_the_route_labels(organization: Any, route: NotificationRoute) -> None:
    first, second = GatewayFactory(organization=organization), GatewayFactory(organization=organization)
    raise_at(first, "ground_fault", T0)
    raise_at(second, "ground_fault", T0)
    assert len(flush(T0 + timedelta(seconds=30))) == 2


def test_later_changes_wait_for_the_group_interval(gateway: Gateway, route: NotificationRoute) -> None:
    raise_at(gateway, "ground_fault", T0)
    flush(T0 + timedelta(seconds=30))
    raise_at(gateway, "over_temperature", T0 + timedelta(seconds=60))
    assert flush(T0 + timedelta(seconds=329)) == []
    [delivery] = flush(T0 + timedelta(seconds=330))
    assert delivery.firing == 2 and len(mail.outbox) == 2


def test_an_unchanged_group_repeats_after_the_repeat_interval(gateway: Gateway, route: NotificationRoute) -> None:
    raise_at(gateway, "ground_fault", T0)
    flush(T0 + timedelta(seconds=30))
    raise_at(gateway, "ground_fault", T0 + timedelta(minutes=10))  # another occurrence changes nothing
    assert flush(T0 + timedelta(minutes=10)) == []
    assert flush(T0 + timedelta(seconds=30) + timedelta(hours=4) - timedelta(seconds=1)) == []
    [repeat] = flush(T0 + timedelta(seconds=30) + timedelta(hours=4))
    assert repeat.firing == 1 and len(mail.outbox) == 2


def test_a_return_to_normal_is_notified_as_resolved(gateway: Gateway, route: NotificationRoute) -> None:
    raise_at(gateway, "ground_fault", T0)
    flush(T0 + timedelta(seconds=30))
    raise_at(gateway, "ground_fault", T0 + timedelta(minutes=1), raised=False)
    [delivery] = flush(T0 + timedelta(seconds=330))
    assert (delivery.firing, delivery.resolved) == (0, 1)
    assert "RESOLVED" in mail.outbox[-1].body
    assert flush(T0 + timedelta(hours=5)) == []  # nothing firing: no repeats


def test_other_severities_do_not_notify(gateway: Gateway, route: NotificationRoute) -> None:
    raise_at(gateway, "fan_noise", T0, severity="minor")
    assert flush(T0 + timedelta(minutes=5)) == []
    assert mail.outbox == []


def test_silences_mute_matching_alarms_only_while_they_last(
    gateway: Gateway, route: NotificationRoute, organization: Any
) -> None:
    Silence.objects.create(
        organization=organization,
        matchers={"gateway": gateway.serial, "code": "ground_fault"},
        starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        comment="planned works",
    )
    raise_at(gateway, "ground_fault", T0)
    assert flush(T0 + timedelta(seconds=30)) == []
    raise_at(gateway, "dc_over_voltage", T0 + timedelta(minutes=1))
    [delivery] = flush(T0 + timedelta(minutes=2))
    assert delivery.firing == 1 and "dc_over_voltage" in mail.outbox[0].body
    assert "ground_fault" not in mail.outbox[0].body
    # The silence does not touch the alarm itself: the console still shows it, unshelved, unsuppressed.
    silenced = Alarm.objects.get(code="ground_fault")
    assert not silenced.suppressed and silenced.shelved_until is None


def test_shelved_alarms_are_not_notified(gateway: Gateway, route: NotificationRoute, users: dict[str, Any]) -> None:
    alarm = raise_at(gateway, "ground_fault", T0)
    services.act_on_alarm(
        action=Action.SHELVE,
        alarm=alarm,
        user=users["operator"],
        shelve_for=timedelta(hours=1),
        now=T0 + timedelta(seconds=5),
    )
    assert flush(T0 + timedelta(seconds=30)) == []


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_url() -> Iterator[str]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhooks_are_signed_with_the_route_secret(gateway: Gateway, organization: Any, webhook_url: str) -> None:
    NotificationRoute.objects.create(
        organization=organization,
        name="pager",
        channel="webhook",
        target=webhook_url,
        secret="s3cret",
        group_by=["site", "code"],
    )
    raise_at(gateway, "ground_fault", T0)
    [delivery] = flush(T0 + timedelta(seconds=30))
    assert delivery.ok
    [(headers, body)] = _Receiver.received
    timestamp = headers["X-Gridfleet-Timestamp"]
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Gridfleet-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["status"] == "firing" and payload["group_labels"] == {
        "site": gateway.site.name,
        "code": "ground_fault",
    }
    assert payload["firing"][0]["labels"]["gateway"] == gateway.serial


def test_a_failing_webhook_is_recorded_and_retried_after_the_group_interval(
    gateway: Gateway, organization: Any, webhook_url: str
) -> None:
    route = NotificationRoute.objects.create(
        organization=organization, name="flaky", channel="webhook", target="http://127.0.0.1:9/nowhere"
    )
    raise_at(gateway, "ground_fault", T0)
    [failed] = flush(T0 + timedelta(seconds=30))
    assert not failed.ok and failed.error
    assert flush(T0 + timedelta(seconds=329)) == []
    NotificationRoute.objects.filter(pk=route.pk).update(target=webhook_url)  # the receiver is back
    [retried] = flush(T0 + timedelta(seconds=330))
    assert retried.ok and retried.firing == 1 and len(_Receiver.received) == 1


def test_admins_manage_routes_and_operators_manage_silences_through_the_api(
    users: dict[str, Any], organization: Any, other_organization: Any, api_client_for: Any
) -> None:
    route = {
        "organization": organization.slug,
        "name": "ops",
        "channel": "email",
        "target": "ops@example.com",
        "severities": ["critical"],
        "group_by": ["site"],
    }
    assert (
        api_client_for(users["operator"]).post("/api/monitoring/notification-routes/", route, format="json").status_code
        == 403
    )
    created = api_client_for(users["admin"]).post("/api/monitoring/notification-routes/", route, format="json")
    assert created.status_code == 201, created.json()
    assert "secret" not in created.json()
    admin = api_client_for(users["admin"])
    unknown_field = admin.post(
        "/api/monitoring/notification-routes/", {**route, "name": "x", "pager": 1}, format="json"
    )
    assert unknown_field.status_code == 400 and "pager" in unknown_field.json()["fields"]
    bad_label = admin.post(
        "/api/monitoring/notification-routes/", {**route, "name": "y", "group_by": ["colour"]}, format="json"
    )
    assert bad_label.status_code == 400 and "group_by" in bad_label.json()["fields"]

    silence = {
        "organization": organization.slug,
        "matchers": {"site": "Depot"},
        "starts_at": "2026-11-26T13:00:00Z",
        "ends_at": "2026-11-26T15:00:00Z",
        "comment": "works",
    }
    viewer = api_client_for(users["viewer"])
    assert viewer.post("/api/monitoring/silences/", silence, format="json").status_code == 403
    operator = api_client_for(users["operator"])
    made = operator.post("/api/monitoring/silences/", silence, format="json")
    assert made.status_code == 201 and made.json()["created_by"] == users["operator"].username
    assert (
        operator.post(
            "/api/monitoring/silences/", {**silence, "matchers": {"colour": "red"}}, format="json"
        ).status_code
        == 400
    )
    backwards = {**silence, "ends_at": "2026-11-26T12:00:00Z"}
    assert "ends_at" in operator.post("/api/monitoring/silences/", backwards, format="json").json()["fields"]
    foreign = {**silence, "organization": other_organization.slug}
    assert operator.post("/api/monitoring/silences/", foreign, format="json").status_code == 400
    assert viewer.get("/api/monitoring/silences/").json()["count"] == 1
