"""Every write path leaves an audit entry; the trail is append-only and readable with filters."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, transaction

from fleet.accounts.roles import Role
from fleet.audit.models import AppendOnlyError, AuditEntry
from fleet.inventory import services
from tests.factories import GatewayFactory, SiteFactory, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "body", "patch"),
    [
        (
            "/api/inventory/sites/",
            {"organization": "sunrise", "name": "S1", "timezone": "America/Denver"},
            {"nameplate_kw": "12.500"},
        ),
        (
            "/api/inventory/gateways/",
            {"organization": "sunrise", "serial": "GW-AU1", "hardware_model": "GF"},
            {"status": "active"},
        ),
        (
            "/api/inventory/groups/",
            {"organization": "sunrise", "name": "Pilot", "kind": "dynamic", "filter": {"hardware_model": ["GF"]}},
            {"description": "first wave"},
        ),
    ],
)
def test_create_update_delete_through_the_api_are_audited_with_who_what_before_after_and_ip(
    path: str, body: dict[str, Any], patch: dict[str, Any], organization: Any, api_client_for: Any
) -> None:
    user = member(organization, Role.OPERATOR)
    client = api_client_for(user)
    created = client.post(path, body, format="json", REMOTE_ADDR="198.51.100.7")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert client.patch(f"{path}{pk}/", patch, format="json").status_code == 200
    assert client.delete(f"{path}{pk}/").status_code == 204

    entries = list(AuditEntry.objects.filter(target_id=str(pk)).order_by("id"))
    assert [e.action.split(".")[1] for e in entries] == ["create", "update", "delete"]
    create, update, delete = entries
    assert create.actor_user == user and create.organization == organization and create.ip == "198.51.100.7"
    field, value = next(iter(patch.items()))
    assert update.after == {field: value} and field in update.before
    assert delete.before["id"] == pk


def test_a_gateway_report_is_audited_as_the_gateway_with_a_history_of_changes(organization: Any) -> None:
    gateway = GatewayFactory(organization=organization)
    services.report_gateway_attributes(gateway=gateway, attributes={"os": "debian-12", "disk_free_mb": 900})
    services.report_gateway_attributes(gateway=gateway, attributes={"os": "debian-12", "disk_free_mb": 850})
    services.report_gateway_attributes(gateway=gateway, attributes={"os": "debian-12", "disk_free_mb": 850})
    history = list(gateway.attribute_changes.order_by("id").values_list("changes", flat=True))
    assert history == [{"disk_free_mb": [None, 900], "os": [None, "debian-12"]}, {"disk_free_mb": [900, 850]}]
    entry = AuditEntry.objects.filter(action="gateway.report_attributes").last()
    assert entry.actor_gateway == gateway and entry.actor_label == f"gateway:{gateway.serial}"
    gateway.refresh_from_db()
    assert gateway.last_seen is not None


def test_entries_cannot_be_changed_or_deleted(organization: Any) -> None:
    site = SiteFactory(organization=organization)
    from fleet.audit.services import record

    entry = record(action="site.touch", target=site)
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="forged")
    # The database refuses it too, whatever code path tries.
    with pytest.raises(DatabaseError), transaction.atomic():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditentry SET action = 'forged' WHERE id = %s", [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).action == "site.touch"


def test_audit_api_filters_and_is_scoped_to_the_users_organizations(
    organization: Any, other_organization: Any, api_client_for: Any
) -> None:
    from fleet.audit.services import record

    record(action="gateway.update", target=GatewayFactory(organization=organization))
    record(action="site.update", target=SiteFactory(organization=organization))
    record(action="gateway.update", target=GatewayFactory(organization=other_organization))
    client = api_client_for(member(organization, Role.OPERATOR))
    rows = client.get("/api/audit/entries/", {"action": "gateway."}).json()["results"]
    assert [(r["action"], r["organization"]) for r in rows] == [("gateway.update", "sunrise")]
    assert client.get("/api/audit/entries/", {"target_type": "inventory.site"}).json()["count"] == 1
    assert api_client_for(member(organization, Role.VIEWER)).get("/api/audit/entries/").status_code == 403
    assert client.post("/api/audit/entries/", {"action": "x"}, format="json").status_code == 405
