"""Who may do what through the REST API, and that tenants never see each other's objects."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.accounts.roles import Role
from fleet.audit.models import AuditEntry
from fleet.inventory.models import Gateway, Site
from tests.factories import GatewayFactory, SiteFactory, UserFactory, member

pytestmark = pytest.mark.django_db

GATEWAYS = "/api/inventory/gateways/"
SITES = "/api/inventory/sites/"


def new_gateway(organization: Any, serial: str = "GW-NEW-1") -> dict[str, Any]:
    return {"serial": serial, "organization": organization.slug, "hardware_model": "GF-100", "tags": ["pilot"]}


@pytest.mark.parametrize("role", Role.values)
def test_every_role_reads_the_inventory_of_its_organization(
    role: str, users: Any, organization: Any, api_client_for: Any
) -> None:
    GatewayFactory(organization=organization, serial="GW-READ")
    response = api_client_for(users[role]).get(GATEWAYS)
    assert response.status_code == 200
    assert [row["serial"] for row in response.json()["results"]] == ["GW-READ"]


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.ADMIN, True),
        (Role.OPERATOR, True),
        (Role.TECHNICIAN, False),
        (Role.VIEWER, False),
    ],
)
def test_only_admins_and_operators_change_the_inventory(
    role: str, allowed: bool, users: Any, organization: Any, api_client_for: Any
) -> None:
    client = api_client_for(users[role])
    created = client.post(GATEWAYS, new_gateway(organization), format="json")
    existing = GatewayFactory(organization=organization)
    patched = client.patch(f"{GATEWAYS}{existing.pk}/", {"name": "renamed"}, format="json")
    deleted = client.delete(f"{GATEWAYS}{existing.pk}/")
    if allowed:
        assert (created.status_code, patched.status_code, deleted.status_code) == (201, 200, 204)
    else:
        assert (created.status_code, patched.status_code, deleted.status_code) == (403, 403, 403)
        assert Gateway.objects.filter(pk=existing.pk, name="").exists()
        assert not Gateway.objects.filter(serial="GW-NEW-1").exists()


def test_anonymous_requests_are_refused(organization: Any, client: Any) -> None:
    GatewayFactory(organization=organization)
    assert client.get(GATEWAYS).status_code in (401, 403)
    assert client.post(GATEWAYS, new_gateway(organization), content_type="application/json").status_code in (401, 403)


def test_a_user_cannot_see_or_change_another_organizations_objects_by_guessing_ids(
    organization: Any, other_organization: Any, api_client_for: Any
) -> None:
    foreign_gateway = GatewayFactory(organization=other_organization)
    foreign_site = SiteFactory(organization=other_organization)
    client = api_client_for(member(organization, Role.ADMIN))

    assert client.get(GATEWAYS).json()["results"] == []
    assert client.get(f"{GATEWAYS}{foreign_gateway.pk}/").status_code == 404
    assert client.patch(f"{GATEWAYS}{foreign_gateway.pk}/", {"name": "x"}, format="json").status_code == 404
    assert client.delete(f"{GATEWAYS}{foreign_gateway.pk}/").status_code == 404
    assert client.get(f"{SITES}{foreign_site.pk}/").status_code == 404
    # Creating into the other tenant, or attaching its site, is refused as well.
    assert client.post(GATEWAYS, new_gateway(other_organization), format="json").status_code == 400
    own = new_gateway(organization) | {"site": foreign_site.pk}
    response = client.post(GATEWAYS, own, format="json")
    assert response.status_code == 400 and "site" in response.json()["fields"]
    assert Gateway.objects.get(pk=foreign_gateway.pk).name == ""


def test_a_viewer_in_one_organization_cannot_write_there_even_if_admin_elsewhere(
    organization: Any, other_organization: Any, api_client_for: Any
) -> None:
    user = member(organization, Role.VIEWER)
    from fleet.accounts.models import Membership

    Membership.objects.create(user=user, organization=other_organization, role=Role.ADMIN)
    gateway = GatewayFactory(organization=organization)
    client = api_client_for(user)
    assert client.patch(f"{GATEWAYS}{gateway.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client.post(GATEWAYS, new_gateway(organization), format="json").status_code == 403
    assert client.post(GATEWAYS, new_gateway(other_organization), format="json").status_code == 201


def test_superusers_see_every_organization(organization: Any, other_organization: Any, api_client_for: Any) -> None:
    GatewayFactory(organization=organization)
    GatewayFactory(organization=other_organization)
    root = UserFactory(is_superuser=True, is_staff=True)
    assert api_client_for(root).get(GATEWAYS).json()["count"] == 2


def test_only_superusers_create_organizations(users: Any, api_client_for: Any) -> None:
    body = {"name": "New Utility", "kind": "utility"}
    refused = api_client_for(users[Role.ADMIN]).post("/api/inventory/organizations/", body, format="json")
    assert refused.status_code == 403
    root = UserFactory(is_superuser=True)
    response = api_client_for(root).post("/api/inventory/organizations/", body, format="json")
    assert response.status_code == 201 and response.json()["slug"] == "new-utility"


@pytest.mark.parametrize(("role", "allowed"), [(Role.ADMIN, True), (Role.OPERATOR, False), (Role.VIEWER, False)])
def test_only_admins_manage_members(
    role: str, allowed: bool, users: Any, organization: Any, api_client_for: Any
) -> None:
    body = {
        "username": "newtech",
        "password": "a-long-unusual-passphrase",
        "organization": organization.slug,
        "role": Role.TECHNICIAN,
    }
    response = api_client_for(users[role]).post("/api/accounts/users/", body, format="json")
    assert response.status_code == (201 if allowed else 403)
    if allowed:
        assert response.json()["memberships"] == [{"organization": "sunrise", "role": "technician"}]
        assert AuditEntry.objects.filter(action="user.create", organization=organization).exists()


def test_token_authentication_works_for_integrators(users: Any, organization: Any, client: Any) -> None:
    GatewayFactory(organization=organization, serial="GW-TOKEN")
    response = client.post(
        "/api/accounts/token/", {"username": users[Role.VIEWER].username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 200
    token = response.json()["token"]
    listed = client.get(GATEWAYS, HTTP_AUTHORIZATION=f"Token {token}")
    assert [row["serial"] for row in listed.json()["results"]] == ["GW-TOKEN"]
    assert client.get(GATEWAYS, HTTP_AUTHORIZATION="Token not-a-token").status_code == 401


def test_site_delete_is_refused_while_an_organization_still_owns_things(
    users: Any, organization: Any, api_client_for: Any
) -> None:
    root = UserFactory(is_superuser=True)
    SiteFactory(organization=organization)
    response = api_client_for(root).delete(f"/api/inventory/organizations/{organization.pk}/")
    assert response.status_code == 409
    assert "Cannot delete" in response.json()["detail"]
    assert Site.objects.filter(organization=organization).exists()
