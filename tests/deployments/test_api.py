"""The REST API at /api/deployments/: create with a preview, operate, read progress; roles; audit."""

from __future__ import annotations

from typing import Any

import pytest

from firmware import services as firmware
from firmware.deployments import services
from firmware.deployments.models import Deployment
from firmware.models import Assignment
from fleet.accounts.authorization import SYSTEM
from fleet.audit.models import AuditEntry
from fleet.inventory.models import Gateway
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayFactory, GatewayGroupFactory, member

pytestmark = pytest.mark.usefixtures("clock")

API = "/api/deployments/"


@pytest.fixture
def setup(organization, make_artifact, fleet) -> dict[str, Any]:
    artifact = make_artifact("2.0.0")
    gateways = fleet(20)
    odd = fleet(1, hardware_model="GX-999")[0]
    group = GatewayGroupFactory(organization=organization)
    group.members.set([*gateways, odd])
    return {"artifact": artifact, "gateways": gateways, "odd": odd, "group": group}


def body(organization: Any, setup: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "organization": organization.pk,
        "name": "gw-os 2.0.0",
        "artifacts": [setup["artifact"].pk],
        "target_kind": "group",
        "target_group": setup["group"].pk,
        "phases": [
            {"name": "canary", "percent": 10, "min_soak_minutes": 60},
            {"name": "all", "percent": 100, "auto_advance": False},
        ],
        "window_start": "01:00",
        "window_end": "04:00",
        "failure_threshold_pct": 20,
        **extra,
    }


def test_preview_shows_gateways_per_phase_and_the_incompatible_ones(api_client_for, users, organization, setup):
    response = api_client_for(users["operator"]).post(f"{API}preview/", body(organization, setup), format="json")
    assert response.status_code == 200, response.data
    assert response.data["eligible"] == 20
    assert [(p["name"], p["gateways"]) for p in response.data["phases"]] == [("canary", 2), ("all", 18)]
    assert response.data["excluded"] == [
        {"serial": setup["odd"].serial, "reason": "incompatible", "detail": "hardware model 'GX-999'"}
    ]
    assert not Deployment.objects.exists()


def test_operator_creates_and_reads_progress(api_client_for, users, organization, setup):
    client = api_client_for(users["operator"])
    response = client.post(API, body(organization, setup), format="json")
    assert response.status_code == 201, response.data
    pk = response.data["id"]
    assert response.data["progress"]["total"] == 20 and response.data["progress"]["excluded"] == 1
    services.run_rollouts(now=NOON_PACIFIC)
    detail = client.get(f"{API}{pk}/").data
    canary = detail["progress"]["phases"][0]
    assert (canary["name"], canary["counts"]["assigned"]) == ("canary", 2)
    listed = client.get(f"{API}{pk}/gateways/", {"state": "assigned"}).data
    assert listed["count"] == 2
    history = client.get(f"{API}actions/{listed['results'][0]['id']}/").data["history"]
    assert [e["to_state"] for e in history] == ["assigned"]
    exclusions = client.get(f"{API}{pk}/exclusions/").data["results"]
    assert exclusions[0]["gateway"] == setup["odd"].serial
    entry = AuditEntry.objects.get(action="deployment.create")
    assert (entry.actor_user, entry.target_id) == (users["operator"], str(pk))


def test_operations_through_the_api_are_audited(api_client_for, users, organization, setup):
    client = api_client_for(users["admin"])
    pk = client.post(API, body(organization, setup), format="json").data["id"]
    paused = client.post(f"{API}{pk}/pause/", {"reason": "utility asked to wait"}, format="json")
    assert (paused.status_code, paused.data["status"], paused.data["status_reason"]) == (
        200,
        "paused",
        "utility asked to wait",
    )
    again = client.post(f"{API}{pk}/pause/", {}, format="json")
    assert again.status_code == 409 and "Only a running deployment" in again.data["detail"]
    assert client.post(f"{API}{pk}/resume/", {}, format="json").data["status"] == "running"
    assert client.post(f"{API}{pk}/approve/", {}, format="json").status_code == 409
    canceled = client.post(f"{API}{pk}/cancel/", {"reason": "changed plans"}, format="json")
    assert canceled.data["status"] == "canceled"
    actions = set(
        AuditEntry.objects.filter(target_id=str(pk), actor_user=users["admin"]).values_list("action", flat=True)
    )
    assert {"deployment.create", "deployment.pause", "deployment.resume", "deployment.cancel"} <= actions


@pytest.mark.parametrize("role", ["viewer", "technician"])
def test_viewers_and_technicians_cannot_start_or_operate(api_client_for, users, organization, setup, role):
    deployment_pk = api_client_for(users["operator"]).post(API, body(organization, setup), format="json").data["id"]
    client = api_client_for(users[role])
    assert client.get(f"{API}{deployment_pk}/").status_code == 200  # they may look
    assert client.post(API, body(organization, setup), format="json").status_code == 403
    assert client.post(f"{API}preview/", body(organization, setup), format="json").status_code == 403
    for operation in ("pause", "cancel", "rollback"):
        assert client.post(f"{API}{deployment_pk}/{operation}/", {}, format="json").status_code == 403
    assert Deployment.objects.get(pk=deployment_pk).status == "running"


def test_other_tenants_deployments_are_invisible(api_client_for, users, organization, other_organization, setup):
    pk = api_client_for(users["operator"]).post(API, body(organization, setup), format="json").data["id"]
    outsider = member(other_organization, "admin")
    client = api_client_for(outsider)
    assert client.get(f"{API}{pk}/").status_code == 404
    assert client.post(f"{API}{pk}/cancel/", {}, format="json").status_code == 404
    foreign = client.post(API, body(organization, setup), format="json")  # not their organization
    assert foreign.status_code == 400 and "organization" in foreign.data["fields"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"phases": [{"name": "a", "percent": 50}, {"name": "b", "percent": 20}]}, "phases", "increasing"),
        ({"phases": [{"name": "a", "percent": 5, "count": 3}]}, "phases", "not both"),
        ({"window_end": None}, "window_end", "both the start and the end"),
        ({"failure_threshold_pct": None}, "failure_threshold_pct", "must be able to stop itself"),
        ({"target_kind": "filter", "target_filter": {"colour": ["red"]}}, "target_filter", "Unknown filter keys"),
        ({"bogus": 1}, "bogus", "Unknown field"),
    ],
)
def test_bad_plans_are_refused_with_a_clear_message(api_client_for, users, organization, setup, change, field, message):
    response = api_client_for(users["operator"]).post(API, {**body(organization, setup), **change}, format="json")
    assert response.status_code == 400
    assert message in str(response.data["fields"][field])


def test_a_target_with_no_compatible_gateway_is_refused(api_client_for, users, organization, setup):
    odd_only = {"target_kind": "list", "target_gateways": [setup["odd"].serial], "target_group": None}
    response = api_client_for(users["operator"]).post(API, body(organization, setup, **odd_only), format="json")
    assert response.status_code == 400 and "all excluded" in str(response.data)


def test_unknown_gateway_serial_in_a_list_is_refused(api_client_for, users, organization, setup):
    GatewayFactory(serial="FOREIGN-1")  # another organization's gateway: not visible
    listed = {"target_kind": "list", "target_gateways": ["FOREIGN-1"], "target_group": None}
    response = api_client_for(users["operator"]).post(API, body(organization, setup, **listed), format="json")
    assert response.status_code == 400 and "target_gateways" in response.data["fields"]


def test_cancel_succeeds_when_the_previous_version_no_longer_fits_the_gateway(
    api_client_for, users, organization, make_artifact, fleet
):
    """Canceling gives each assigned gateway back its previous version; when that version cannot be
    assigned any more (here: the board was swapped for another hardware model), the cancel still
    succeeds, the canceled version's assignment is withdrawn and the history says why."""
    old, new = make_artifact("1.0.0", models=("GF-100",)), make_artifact("2.0.0", models=("GF-100", "GF-200"))
    gateway = fleet(1)[0]
    firmware.assign(gateway=gateway, artifact_type="firmware", artifact=old, actor=SYSTEM)
    client = api_client_for(users["operator"])
    request = {
        "organization": organization.pk,
        "name": "gw-os 2.0.0",
        "artifacts": [new.pk],
        "target_kind": "list",
        "target_gateways": [gateway.serial],
        "phases": [{"name": "all", "percent": 100}],
        "failure_threshold_pct": 20,
    }
    created = client.post(API, request, format="json")
    assert created.status_code == 201, created.data
    services.run_rollouts(now=NOON_PACIFIC)
    assert Assignment.objects.get(gateway=gateway, artifact_type="firmware").artifact == new
    Gateway.objects.filter(pk=gateway.pk).update(hardware_model="GF-200")

    canceled = client.post(f"{API}{created.data['id']}/cancel/", {"reason": "changed plans"}, format="json")

    assert canceled.status_code == 200, canceled.content
    assert canceled.data["status"] == "canceled"
    assert not Assignment.objects.filter(gateway=gateway, artifact_type="firmware").exists()
    action = client.get(f"{API}{created.data['id']}/gateways/").data["results"][0]
    history = client.get(f"{API}actions/{action['id']}/").data["history"]
    restore = [e["message"] for e in history if "could not be restored" in e["message"]]
    assert len(restore) == 1 and "GF-200" in restore[0] and "assignment removed" in restore[0]
