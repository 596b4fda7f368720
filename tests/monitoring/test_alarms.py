"""Alarm triage through the REST API: roles, every transition, refusals, shelving expiry, suppression."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from fleet.audit.models import AuditEntry
from fleet.inventory.models import Gateway
from fleet.monitoring import services
from fleet.monitoring.lifecycle import Action, AlarmState
from fleet.monitoring.models import Alarm, MonitoringSettings
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db

API = "/api/monitoring/alarms/"


@pytest.fixture
def gateway(organization: Any) -> Gateway:
    return GatewayFactory(organization=organization, status=Gateway.Status.ACTIVE, last_seen=timezone.now())


def raise_alarm(gateway: Gateway, code: str = "sunspec.evt1.ground_fault", device: str = "INV-1", **kw: Any) -> Alarm:
    alarm = services.report_condition(
        gateway=gateway,
        source=f"device:{device}" if device else "agent",
        code=code,
        severity=kw.pop("severity", "critical"),
        raised=True,
        message="Ground fault",
        at=kw.pop("at", timezone.now()),
        device=device,
        **kw,
    )
    assert alarm is not None
    return alarm


def clear_alarm(gateway: Gateway, alarm: Alarm) -> None:
    services.report_condition(
        gateway=gateway,
        source=alarm.source,
        code=alarm.code,
        severity=alarm.severity,
        raised=False,
        message="",
        at=timezone.now(),
        device=alarm.device,
    )


def post(client: Any, alarm: Alarm, action: str, **data: Any) -> Any:
    return client.post(f"{API}{alarm.pk}/{action}/", data, format="json")


def test_viewers_read_alarms_but_cannot_triage(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    alarm = raise_alarm(gateway)
    viewer = api_client_for(users["viewer"])
    listed = viewer.get(API)
    assert listed.status_code == 200 and [a["id"] for a in listed.json()["results"]] == [alarm.pk]
    assert viewer.get(f"{API}{alarm.pk}/").json()["transitions"][0]["action"] == "raise"
    refused = post(viewer, alarm, "acknowledge")
    assert refused.status_code == 403
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.ACTIVE_UNACKNOWLEDGED


def test_another_organizations_alarm_is_not_found(
    users: dict[str, Any], other_organization: Any, api_client_for: Any
) -> None:
    foreign = raise_alarm(GatewayFactory(organization=other_organization))
    operator = api_client_for(users["operator"])
    assert operator.get(f"{API}{foreign.pk}/").status_code == 404
    assert post(operator, foreign, "acknowledge").status_code == 404
    assert operator.get(API).json()["results"] == []


def test_operator_acknowledges_and_the_gateway_clear_closes_the_alarm(
    users: dict[str, Any], gateway: Gateway, api_client_for: Any
) -> None:
    alarm = raise_alarm(gateway)
    operator = api_client_for(users["operator"])
    response = post(operator, alarm, "acknowledge", comment="crew dispatched")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "active_acknowledged" and body["acknowledged_by"] == users["operator"].username
    last = body["transitions"][-1]
    assert (last["action"], last["from_state"], last["to_state"], last["actor_label"], last["comment"]) == (
        "acknowledge",
        "active_unacknowledged",
        "active_acknowledged",
        users["operator"].username,
        "crew dispatched",
    )
    assert AuditEntry.objects.filter(action="alarm.acknowledge", actor_user=users["operator"]).count() == 1
    clear_alarm(gateway, alarm)
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.CLOSED and alarm.closed_at is not None
    assert alarm.transitions.last().actor_label == f"gateway:{gateway.serial}"


def test_a_cleared_alarm_waits_for_acknowledgement_then_closes(
    users: dict[str, Any], gateway: Gateway, api_client_for: Any
) -> None:
    alarm = raise_alarm(gateway)
    clear_alarm(gateway, alarm)
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.CLEARED_UNACKNOWLEDGED
    assert post(api_client_for(users["operator"]), alarm, "acknowledge").json()["state"] == "closed"
    # A new occurrence after closing opens a new alarm.
    again = raise_alarm(gateway)
    assert again.pk != alarm.pk and Alarm.objects.count() == 2


@pytest.mark.parametrize(
    ("setup", "action", "data", "message"),
    [
        ("acknowledged", "acknowledge", {}, "already acknowledged"),
        ("closed", "acknowledge", {}, "nothing to acknowledge"),
        ("closed", "shelve", {"duration_minutes": 60}, "closed"),
        ("shelved", "shelve", {"duration_minutes": 60}, "already shelved"),
        ("raised", "shelve", {"duration_minutes": 25 * 60}, "at most 24 hours"),
        ("raised", "unshelve", {}, "not shelved"),
        ("raised", "unsuppress", {}, "not suppressed"),
        ("raised", "return-to-service", {}, "not out of service"),
        ("out_of_service", "shelve", {"duration_minutes": 30}, "out of service"),
        ("out_of_service", "remove-from-service", {}, "already out of service"),
    ],
)
def test_refused_transitions_answer_409_with_the_reason(
    users: dict[str, Any],
    gateway: Gateway,
    api_client_for: Any,
    setup: str,
    action: str,
    data: dict[str, Any],
    message: str,
) -> None:
    operator_user = users["operator"]
    alarm = raise_alarm(gateway)
    if setup in ("acknowledged", "closed"):
        services.act_on_alarm(action=Action.ACKNOWLEDGE, alarm=alarm, user=operator_user)
    if setup == "closed":
        clear_alarm(gateway, alarm)
    if setup == "shelved":
        services.act_on_alarm(action=Action.SHELVE, alarm=alarm, user=operator_user, shelve_for=timedelta(hours=1))
    if setup == "out_of_service":
        services.act_on_alarm(action=Action.REMOVE_FROM_SERVICE, alarm=alarm, user=operator_user)
    alarm.refresh_from_db()
    before = (alarm.state, alarm.transitions.count())
    response = post(api_client_for(operator_user), alarm, action, **data)
    assert response.status_code == 409, response.json()
    assert message in response.json()["detail"]
    alarm.refresh_from_db()
    assert (alarm.state, alarm.transitions.count()) == before


def test_overlays_are_recorded_in_the_timeline(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    alarm = raise_alarm(gateway)
    operator = api_client_for(users["operator"])
    assert post(operator, alarm, "shelve", duration_minutes=30, comment="storm").json()["shelved"] is True
    assert post(operator, alarm, "unshelve").json()["shelved"] is False
    assert post(operator, alarm, "suppress", comment="known").json()["suppressed"] is True
    assert post(operator, alarm, "unsuppress").json()["suppressed"] is False
    assert post(operator, alarm, "remove-from-service", comment="maintenance").json()["out_of_service"] is True
    assert post(operator, alarm, "return-to-service").json()["out_of_service"] is False
    body = post(operator, alarm, "comment", comment="inverter replaced").json()
    assert [t["action"] for t in body["transitions"]] == [
        "raise",
        "shelve",
        "unshelve",
        "suppress",
        "unsuppress",
        "remove_from_service",
        "return_to_service",
        "comment",
    ]
    assert body["transitions"][1]["comment"] == "storm"
    assert body["state"] == "active_unacknowledged"
    assert AuditEntry.objects.filter(action__startswith="alarm.", actor_user=users["operator"]).count() == 7


def test_bad_action_input_is_a_400(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    alarm = raise_alarm(gateway)
    operator = api_client_for(users["operator"])
    assert "duration_minutes" in post(operator, alarm, "shelve").json()["fields"]
    assert post(operator, alarm, "shelve", duration_minutes="soon").status_code == 400
    assert post(operator, alarm, "comment", comment="").status_code == 400


def test_bulk_acknowledge_reports_refusals_per_alarm(
    users: dict[str, Any], gateway: Gateway, api_client_for: Any
) -> None:
    first = raise_alarm(gateway, code="a")
    second = raise_alarm(gateway, code="b")
    services.act_on_alarm(action=Action.ACKNOWLEDGE, alarm=second, user=users["operator"])
    operator = api_client_for(users["operator"])
    response = operator.post(
        f"{API}bulk-acknowledge/", {"ids": [first.pk, second.pk], "comment": "seen"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {
        "acknowledged": [first.pk],
        "refused": {str(second.pk): "The alarm is already acknowledged."},
    }
    assert operator.post(f"{API}bulk-acknowledge/", {"ids": [999999]}, format="json").status_code == 400


def test_repeats_count_occurrences_on_the_open_alarm(gateway: Gateway) -> None:
    alarm = raise_alarm(gateway)
    raise_alarm(gateway)
    raise_alarm(gateway)
    alarm.refresh_from_db()
    assert alarm.occurrences == 3 and Alarm.objects.count() == 1


def test_shelving_expires_by_itself(users: dict[str, Any], gateway: Gateway) -> None:
    alarm = raise_alarm(gateway)
    now = timezone.now()
    services.act_on_alarm(
        action=Action.SHELVE, alarm=alarm, user=users["operator"], shelve_for=timedelta(minutes=30), now=now
    )
    assert services.expire_shelves(now=now + timedelta(minutes=29)) == 0
    alarm.refresh_from_db()
    assert alarm.is_shelved(now + timedelta(minutes=29))
    assert services.expire_shelves(now=now + timedelta(minutes=30)) == 1
    alarm.refresh_from_db()
    assert alarm.shelved_until is None
    expired = alarm.transitions.last()
    assert (expired.action, expired.actor_label) == ("shelve_expired", "system")


def test_shelving_limit_is_configurable_per_organization(
    users: dict[str, Any], gateway: Gateway, api_client_for: Any
) -> None:
    MonitoringSettings.objects.create(organization=gateway.organization, max_shelve_hours=2)
    alarm = raise_alarm(gateway)
    response = post(api_client_for(users["operator"]), alarm, "shelve", duration_minutes=180)
    assert response.status_code == 409 and "at most 2 hours" in response.json()["detail"]


def test_offline_gateway_raises_an_alarm_and_suppresses_its_device_alarms(gateway: Gateway) -> None:
    device_alarm = raise_alarm(gateway)
    agent_alarm = raise_alarm(gateway, code="agent.disk_full", device="")
    now = timezone.now()
    Gateway.objects.filter(pk=gateway.pk).update(last_seen=now - timedelta(minutes=11))
    assert services.detect_offline_gateways(now=now) == [gateway]
    offline = Alarm.objects.get(code=services.OFFLINE_CODE)
    assert offline.state == AlarmState.ACTIVE_UNACKNOWLEDGED and offline.source == "server"
    device_alarm.refresh_from_db()
    agent_alarm.refresh_from_db()
    assert device_alarm.suppressed and device_alarm.suppressed_reason == "gateway offline"
    assert not agent_alarm.suppressed
    # A new device alarm while offline arrives suppressed; detection does not raise twice.
    late = raise_alarm(gateway, code="sunspec.evt1.over_temperature")
    assert late.suppressed
    assert services.detect_offline_gateways(now=now + timedelta(minutes=1)) == []

    services.gateway_came_online(gateway=gateway, now=now + timedelta(minutes=2))
    offline.refresh_from_db()
    device_alarm.refresh_from_db()
    late.refresh_from_db()
    assert offline.state == AlarmState.CLEARED_UNACKNOWLEDGED
    assert not device_alarm.suppressed and not late.suppressed


def test_offline_threshold_is_configurable_per_organization(gateway: Gateway) -> None:
    MonitoringSettings.objects.create(organization=gateway.organization, offline_after_seconds=60)
    now = NOON_PACIFIC.replace(hour=13, minute=0)
    Gateway.objects.filter(pk=gateway.pk).update(last_seen=now - timedelta(seconds=59))
    assert services.detect_offline_gateways(now=now) == []
    assert services.detect_offline_gateways(now=now + timedelta(seconds=2)) == [gateway]


def test_alarm_filters_and_sorting(users: dict[str, Any], gateway: Gateway, api_client_for: Any) -> None:
    critical = raise_alarm(gateway, code="trip", severity="critical")
    minor = raise_alarm(gateway, code="fan", severity="minor")
    other = raise_alarm(GatewayFactory(organization=gateway.organization), code="fan", severity="warning")
    viewer = api_client_for(users["viewer"])

    def ids(query: str) -> list[int]:
        response = viewer.get(f"{API}?{query}")
        assert response.status_code == 200, response.json()
        return [a["id"] for a in response.json()["results"]]

    assert ids("") == [critical.pk, minor.pk, other.pk]  # most severe first
    assert ids("severity=minor&severity=warning") == [minor.pk, other.pk]
    assert ids(f"gateway={gateway.pk}&code=fan") == [minor.pk]
    assert ids("ordering=-last_raised_at") == [other.pk, minor.pk, critical.pk]
    services.act_on_alarm(action=Action.ACKNOWLEDGE, alarm=critical, user=users["operator"])
    assert ids("state=active_acknowledged") == [critical.pk]
    assert ids("open=false") == []
    assert viewer.get(f"{API}?severity=apocalyptic").status_code == 400
