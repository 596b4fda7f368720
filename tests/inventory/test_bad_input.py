"""Bad input is answered with a 4xx that says what to change, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.accounts.roles import Role
from tests.factories import GatewayFactory, member

pytestmark = pytest.mark.django_db
GATEWAYS = "/api/inventory/gateways/"


@pytest.fixture
def client(organization: Any, api_client_for: Any) -> Any:
    return api_client_for(member(organization, Role.OPERATOR))


def body(**overrides: Any) -> dict[str, Any]:
    return {"serial": "GW-BAD-1", "organization": "sunrise", "hardware_model": "GF-100"} | overrides


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (body(colour="red"), "colour", "Unknown field."),
        (body(last_seen="2026-01-01T00:00:00Z"), "last_seen", "read-only"),
        (body(serial="has spaces"), "serial", "A serial is"),
        (body(serial=""), "serial", "may not be blank"),
        (body(status="exploded"), "status", "not a valid choice"),
        (body(site="not-an-id"), "site", "Incorrect type"),
        (body(tags="pilot"), "tags", "Expected a list"),
        (body(hardware_model=["GF"]), "hardware_model", "Not a valid string"),
    ],
)
def test_invalid_gateway_fields_get_a_400_naming_the_field(
    payload: dict[str, Any], field: str, message: str, client: Any
) -> None:
    response = client.post(GATEWAYS, payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json()["fields"][field])


def test_duplicate_serial_is_a_400_not_a_500(organization: Any, client: Any) -> None:
    GatewayFactory(organization=organization, serial="GW-DUP")
    response = client.post(GATEWAYS, body(serial="GW-DUP"), format="json")
    assert response.status_code == 400
    assert "already exists" in str(response.json()["fields"]["serial"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"organization": "sunrise", "name": "S", "latitude": "91"}, "latitude"),
        ({"organization": "sunrise", "name": "S", "timezone": "Mars/Olympus"}, "timezone"),
        ({"organization": "sunrise", "name": "S", "nameplate_kw": "-3"}, "nameplate_kw"),
        ({"organization": "sunrise", "name": "S", "nameplate_kw": "lots"}, "nameplate_kw"),
    ],
)
def test_invalid_site_values_are_refused(payload: dict[str, Any], field: str, client: Any) -> None:
    response = client.post("/api/inventory/sites/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_malformed_json_is_a_400(client: Any) -> None:
    response = client.post(GATEWAYS, data='{"serial": ', content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_an_oversize_body_is_a_413(client: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post(GATEWAYS, body(name="x" * 5000), format="json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


@pytest.mark.parametrize(
    "group_filter",
    [
        {},
        {"colour": ["red"]},
        {"site": ["one"]},
        {"tags": "pilot"},
        {"attributes": {"os": ["a", "b"]}},
    ],
)
def test_dynamic_groups_refuse_malformed_filters(group_filter: dict[str, Any], client: Any) -> None:
    response = client.post(
        "/api/inventory/groups/",
        {"organization": "sunrise", "name": "G", "kind": "dynamic", "filter": group_filter},
        format="json",
    )
    assert response.status_code == 400
    assert "filter" in response.json()["fields"]
