"""Bulk import and export of sites and gateways as CSV: all rows or none, errors name line and field."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fleet.accounts.roles import Role
from fleet.audit.models import AuditEntry
from fleet.inventory.models import Gateway, Site
from tests.factories import GatewayFactory, SiteFactory, member

pytestmark = pytest.mark.django_db


def upload(client: Any, kind: str, text: str) -> Any:
    return client.post(
        f"/api/inventory/{kind}/import/",
        {"file": SimpleUploadedFile(f"{kind}.csv", text.encode(), content_type="text/csv")},
        format="multipart",
    )


@pytest.fixture
def operator_client(organization: Any, api_client_for: Any) -> Any:
    return api_client_for(member(organization, Role.OPERATOR))


def test_gateway_import_creates_every_row_with_site_and_tags(organization: Any, operator_client: Any) -> None:
    SiteFactory(organization=organization, name="Fresno 1")
    text = (
        "organization,serial,site,hardware_model,tags\nsunrise,GW-A1,Fresno 1,GF-100,pilot;ca\nsunrise,GW-A2,,GF-200,\n"
    )
    response = upload(operator_client, "gateways", text)
    assert response.status_code == 201, response.json()
    assert response.json() == {"created": 2}
    first = Gateway.objects.get(serial="GW-A1")
    assert first.site.name == "Fresno 1"
    assert sorted(first.tags.values_list("slug", flat=True)) == ["ca", "pilot"]
    assert AuditEntry.objects.filter(action="gateway.create").count() == 2
    assert AuditEntry.objects.filter(action="gateways.import", detail={"created": 2}).exists()


def test_one_bad_row_imports_nothing_and_names_the_line_and_field(organization: Any, operator_client: Any) -> None:
    GatewayFactory(organization=organization, serial="GW-TAKEN")
    text = (
        "organization,serial,site,hardware_model\n"
        "sunrise,GW-B1,,GF-100\n"
        "sunrise,GW-TAKEN,,GF-100\n"
        "sunrise,GW-B3,Nowhere,GF-100\n"
        "sunrise,GW-B1,,GF-100\n"
        "sunrise,GW-B5,,\n"
    )
    response = upload(operator_client, "gateways", text)
    assert response.status_code == 400
    errors = {(e["line"], e["field"]) for e in response.json()["errors"]}
    assert errors == {(3, "serial"), (4, "site"), (5, "serial"), (6, "hardware_model")}
    assert "Nothing was imported" in response.json()["detail"]
    assert not Gateway.objects.filter(serial__startswith="GW-B").exists()


def test_import_refuses_rows_for_an_organization_the_user_cannot_manage(
    organization: Any, other_organization: Any, operator_client: Any
) -> None:
    response = upload(operator_client, "sites", "organization,name\nsunrise,Ok\nother,Not mine\n")
    assert response.status_code == 400
    assert [(e["line"], e["field"]) for e in response.json()["errors"]] == [(3, "organization")]
    assert not Site.objects.filter(name="Ok").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("organization,serial,colour,hardware_model\nsunrise,GW-1,red,GF\n", "Unknown column"),
        ("organization,hardware_model\nsunrise,GF\n", "Required column is missing"),
        ("organization,serial,hardware_model\n", "no rows"),
        ("organization,serial,hardware_model\nsunrise,GW-1,GF,extra\n", "More values than columns"),
    ],
)
def test_malformed_files_are_refused_with_a_clear_reason(text: str, message: str, operator_client: Any) -> None:
    response = upload(operator_client, "gateways", text)
    assert response.status_code == 400
    assert message in str(response.json()["errors"])


def test_non_utf8_file_is_refused(operator_client: Any) -> None:
    response = operator_client.post(
        "/api/inventory/gateways/import/", {"file": SimpleUploadedFile("g.csv", b"\xff\xfe\x00bad")}, format="multipart"
    )
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]


def test_viewers_cannot_import(organization: Any, api_client_for: Any) -> None:
    client = api_client_for(member(organization, Role.VIEWER))
    assert upload(client, "sites", "organization,name\nsunrise,X\n").status_code == 403


def test_export_then_import_round_trips_into_another_organization(
    organization: Any, other_organization: Any, api_client_for: Any
) -> None:
    site = SiteFactory(organization=organization, name="Bakersfield")
    GatewayFactory(organization=organization, site=site, serial="GW-RT1", tags=["pilot"])
    admin = member(organization, Role.ADMIN)
    from fleet.accounts.models import Membership

    Membership.objects.create(user=admin, organization=other_organization, role=Role.ADMIN)
    client = api_client_for(admin)
    sites_csv = client.get("/api/inventory/sites/export/").content.decode()
    gateways_csv = client.get("/api/inventory/gateways/export/").content.decode()
    assert "GW-RT1,,Bakersfield,GF-100,1.0.0,registered,pilot" in gateways_csv

    GatewayFactory._meta.model.objects.filter(serial="GW-RT1").delete()
    assert upload(client, "sites", sites_csv.replace("sunrise", "other")).status_code == 201
    assert upload(client, "gateways", gateways_csv.replace("sunrise", "other")).status_code == 201
    moved = Gateway.objects.get(serial="GW-RT1")
    assert (moved.organization, moved.site.name) == (other_organization, "Bakersfield")
