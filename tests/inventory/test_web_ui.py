"""The server-rendered web UI: login, pages per role, tenancy, htmx partials, CSV import form."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from fleet.accounts.roles import Role
from fleet.inventory.models import Site
from tests.factories import GatewayFactory, GatewayGroupFactory, SiteFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_visitors_are_sent_to_the_login_page(client: Client) -> None:
    response = client.get("/gateways/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_login_with_password_then_dashboard_shows_the_fleet(organization: Any) -> None:
    UserFactory(username="ops")
    user = member(organization, Role.OPERATOR)
    GatewayFactory(organization=organization, status="active")
    GatewayFactory(organization=organization, status="registered")
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": "correct-horse-battery"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "<title>Dashboard · Gridfleet</title>" in page
    assert '<div class="value">2</div><div class="label">Gateways</div>' in page


@pytest.mark.parametrize("role", Role.values)
def test_every_role_browses_gateways_sites_groups_and_details(role: str, users: Any, organization: Any) -> None:
    site = SiteFactory(organization=organization, name="Visalia")
    gateway = GatewayFactory(organization=organization, site=site, serial="GW-UI-1")
    group = GatewayGroupFactory(organization=organization, kind="dynamic", filter={"hardware_model": ["GF-100"]})
    client = logged_in(users[role])
    pages = [
        ("/gateways/", "GW-UI-1"),
        (f"/gateways/{gateway.pk}/", "Visalia"),
        ("/sites/", "Visalia"),
        (f"/sites/{site.pk}/", "GW-UI-1"),
        ("/groups/", group.name),
        (f"/groups/{group.pk}/", "GW-UI-1"),
    ]
    for path, text in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert text in response.content.decode(), path


def test_other_organizations_pages_are_not_found(organization: Any, other_organization: Any) -> None:
    foreign = GatewayFactory(organization=other_organization, serial="GW-FOREIGN")
    client = logged_in(member(organization, Role.ADMIN))
    assert client.get(f"/gateways/{foreign.pk}/").status_code == 404
    assert client.get(f"/sites/{foreign.site.pk}/").status_code == 404
    assert "GW-FOREIGN" not in client.get("/gateways/").content.decode()
    assert "GW-FOREIGN" not in client.get("/gateways/export.csv").content.decode()


def test_gateway_filter_answers_htmx_with_just_the_table(organization: Any) -> None:
    GatewayFactory(organization=organization, serial="GW-ACTIVE", status="active")
    GatewayFactory(organization=organization, serial="GW-NEW", status="registered")
    response = logged_in(member(organization, Role.VIEWER)).get(
        "/gateways/", {"status": "active"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert "<html" not in body and "GW-ACTIVE" in body and "GW-NEW" not in body


@pytest.mark.parametrize(("role", "status"), [(Role.OPERATOR, 302), (Role.VIEWER, 403), (Role.TECHNICIAN, 403)])
def test_csv_import_page_is_for_inventory_managers_only(role: str, status: int, users: Any) -> None:
    upload = SimpleUploadedFile("sites.csv", b"organization,name\nsunrise,Tulare\n")
    response = logged_in(users[role]).post("/sites/import/", {"file": upload})
    assert response.status_code == status
    assert Site.objects.filter(name="Tulare").exists() == (status == 302)


def test_csv_import_page_lists_row_errors_and_imports_nothing(users: Any) -> None:
    upload = SimpleUploadedFile("sites.csv", b"organization,name,latitude\nsunrise,Ok,10\nsunrise,Bad,200\n")
    response = logged_in(users[Role.ADMIN]).post("/sites/import/", {"file": upload})
    assert response.status_code == 400
    assert "<td>3</td><td>latitude</td>" in response.content.decode()
    assert not Site.objects.filter(name="Ok").exists()


@pytest.mark.parametrize(("role", "status"), [(Role.OPERATOR, 200), (Role.ADMIN, 200), (Role.VIEWER, 403)])
def test_audit_log_page_is_for_operators_and_admins(role: str, status: int, users: Any) -> None:
    assert logged_in(users[role]).get("/audit/").status_code == status


def test_admin_site_is_for_superusers_only(users: Any) -> None:
    assert logged_in(users[Role.ADMIN]).get("/admin/").status_code == 302
    root = UserFactory(is_superuser=True, is_staff=True)
    assert logged_in(root).get("/admin/inventory/gateway/").status_code == 200


def test_dashboard_loads_the_open_alarm_summary_card(users: Any) -> None:
    page = logged_in(users[Role.VIEWER]).get("/").content.decode()
    assert 'hx-get="/monitoring/alarms/summary/"' in page
