"""Static and dynamic gateway groups."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.accounts.roles import Role
from fleet.inventory.models import GatewayGroup
from fleet.inventory.selectors import group_members
from fleet.inventory.services import report_gateway_attributes
from tests.factories import GatewayFactory, GatewayGroupFactory, SiteFactory, member

pytestmark = pytest.mark.django_db


def serials(queryset: Any) -> list[str]:
    return sorted(queryset.values_list("serial", flat=True))


def test_dynamic_group_matches_site_model_tags_and_reported_attributes(
    organization: Any, other_organization: Any
) -> None:
    fresno = SiteFactory(organization=organization)
    match = GatewayFactory(
        organization=organization, site=fresno, serial="GW-M", hardware_model="GF-200", tags=["pilot", "ca"]
    )
    report_gateway_attributes(gateway=match, attributes={"os": "debian-12"})
    GatewayFactory(
        organization=organization, site=fresno, serial="GW-WRONG-TAGS", hardware_model="GF-200", tags=["pilot"]
    )
    GatewayFactory(organization=organization, serial="GW-OTHER-SITE", hardware_model="GF-200", tags=["pilot", "ca"])
    GatewayFactory(
        organization=other_organization, serial="GW-OTHER-ORG", hardware_model="GF-200", tags=["pilot", "ca"]
    )
    group = GatewayGroupFactory(
        organization=organization,
        kind=GatewayGroup.Kind.DYNAMIC,
        filter={
            "site": [fresno.pk],
            "hardware_model": ["GF-200"],
            "tags": ["pilot", "ca"],
            "attributes": {"os": "debian-12"},
        },
    )
    assert serials(group_members(group)) == ["GW-M"]


def test_a_gateway_joins_a_dynamic_group_when_it_starts_matching(organization: Any) -> None:
    gateway = GatewayFactory(organization=organization, firmware_version="1.0.0")
    group = GatewayGroupFactory(organization=organization, kind="dynamic", filter={"firmware_version": ["2.0.0"]})
    assert serials(group_members(group)) == []
    report_gateway_attributes(gateway=gateway, attributes={"firmware_version": "2.0.0"})
    assert serials(group_members(group)) == [gateway.serial]


def test_static_group_members_through_the_api(organization: Any, other_organization: Any, api_client_for: Any) -> None:
    mine = GatewayFactory(organization=organization, serial="GW-S1")
    foreign = GatewayFactory(organization=other_organization, serial="GW-F1")
    client = api_client_for(member(organization, Role.OPERATOR))
    created = client.post(
        "/api/inventory/groups/", {"organization": "sunrise", "name": "Canary", "members": [mine.pk]}, format="json"
    )
    assert created.status_code == 201
    listed = client.get(f"/api/inventory/groups/{created.json()['id']}/gateways/").json()
    assert [row["serial"] for row in listed["results"]] == ["GW-S1"]
    refused = client.post(
        "/api/inventory/groups/", {"organization": "sunrise", "name": "Sneaky", "members": [foreign.pk]}, format="json"
    )
    assert refused.status_code == 400 and "members" in refused.json()["fields"]


def test_gateway_list_filters_by_group_status_tag_and_search(organization: Any, api_client_for: Any) -> None:
    GatewayFactory(organization=organization, serial="GW-ACT", status="active", tags=["pilot"])
    GatewayFactory(organization=organization, serial="GW-REG", status="registered")
    group = GatewayGroupFactory(organization=organization, kind="dynamic", filter={"status": ["active"]})
    client = api_client_for(member(organization, Role.VIEWER))

    def listed(**params: Any) -> list[str]:
        return [row["serial"] for row in client.get("/api/inventory/gateways/", params).json()["results"]]

    assert listed(status="active") == ["GW-ACT"]
    assert listed(tag="pilot") == ["GW-ACT"]
    assert listed(group=group.pk) == ["GW-ACT"]
    assert listed(search="REG") == ["GW-REG"]
    assert listed(ordering="-serial") == ["GW-REG", "GW-ACT"]
