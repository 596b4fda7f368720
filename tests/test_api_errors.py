"""Every REST API error answers in one body (docs/api-errors.md), whichever app refuses:

    {"code": "<stable reason>", "detail": "<what to change>", "fields": {...}}  (fields optional)

and the gateway protocol (/gw/v1/) answers in its documented frame {"error": ..., "detail": ...}.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from rest_framework.test import APIClient

from fleet.monitoring import services as monitoring
from tests.conftest import NOON_PACIFIC
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db


def assert_one_body(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) - {"fields", "errors"} == {"code", "detail"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body.get("fields", {}), dict), body
    return body


@pytest.fixture
def gateway(organization: Any) -> Any:
    return GatewayFactory(organization=organization, status="active")


def test_inventory_validation_names_the_field(api_client_for, users, organization):
    body = {"serial": "has spaces", "organization": "sunrise", "hardware_model": "GF-100"}
    response = api_client_for(users["operator"]).post("/api/inventory/gateways/", body, format="json")
    answer = assert_one_body(response, 400, "invalid")
    assert "serial" in answer["fields"] and answer["detail"].startswith("serial: ")


def test_inventory_csv_import_lists_the_rows(api_client_for, users, organization):
    upload = io.BytesIO(b"organization,name,latitude\nsunrise,Depot,91\n")
    response = api_client_for(users["operator"]).post(
        "/api/inventory/sites/import/", {"file": upload}, format="multipart"
    )
    answer = assert_one_body(response, 400, "invalid_csv")
    assert answer["errors"][0]["line"] == 2 and answer["errors"][0]["field"] == "latitude"


def test_accounts_refusal(api_client_for, users):
    body = {"username": "new", "password": "a long enough password 1", "organization": "sunrise", "role": "viewer"}
    response = api_client_for(users["operator"]).post("/api/accounts/users/", body, format="json")
    assert_one_body(response, 403, "permission_denied")


def test_audit_not_found(api_client_for, users):
    assert_one_body(api_client_for(users["admin"]).get("/api/audit/entries/999999/"), 404, "not_found")


def test_firmware_refusal(api_client_for, users, organization):
    data = {"organization": organization.pk, "type": "firmware", "name": "gw-os", "version": "2.1.0"}
    response = api_client_for(users["operator"]).post(
        "/api/firmware/artifacts/", {**data, "file": io.BytesIO(b"not a tar")}, format="multipart"
    )
    assert "not a tar archive" in assert_one_body(response, 400, "artifact_rejected")["detail"]


def test_pki_refusal(api_client_for, users):
    assert_one_body(api_client_for(users["operator"]).get("/api/pki/certificates/"), 403, "permission_denied")


def test_monitoring_refusal(api_client_for, users, gateway):
    alarm = monitoring.report_condition(
        gateway=gateway,
        source="device:INV-1",
        code="sunspec.evt1.ground_fault",
        severity="critical",
        raised=True,
        message="Ground fault",
        at=NOON_PACIFIC.replace(hour=12),
    )
    assert alarm is not None
    client = api_client_for(users["operator"])
    url = f"/api/monitoring/alarms/{alarm.pk}/acknowledge/"
    assert client.post(url, {}, format="json").status_code == 200
    assert_one_body(client.post(url, {}, format="json"), 409, "transition_refused")


def test_uplink_refusal_names_the_field(api_client_for, users, gateway):
    body = {"gateway": gateway.pk, "name": "set_power_limit", "args": {"device": "x", "limit_pct": 101}}
    response = api_client_for(users["operator"]).post("/api/uplink/commands/", body, format="json")
    assert "args" in assert_one_body(response, 400, "invalid")["fields"]


def test_deployments_not_found(api_client_for, users):
    response = api_client_for(users["operator"]).post("/api/deployments/999999/pause/", {}, format="json")
    assert_one_body(response, 404, "not_found")


def test_unauthenticated_is_a_401_with_a_challenge():
    response = APIClient().get("/api/inventory/gateways/")
    assert_one_body(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"].startswith("Token")


def test_gateway_protocol_keeps_its_documented_frame():
    malformed = APIClient().post("/gw/v1/enroll", "not json", content_type="application/json")
    assert malformed.status_code == 400
    assert set(malformed.json()) == {"error", "detail"} and malformed.json()["error"] == "invalid_request"
    anonymous = APIClient().get("/gw/v1/identity")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_access_token"
