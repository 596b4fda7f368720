"""Operators' side of the utility link: programs and controls through the API and the UI, the
gateway CSR endpoint that pre-registers EndDevices, and the link state reported over the uplink."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from fleet.csip import services
from fleet.csip.models import DerControl, DerControlResponse, EndDevice
from fleet.uplink import services as uplink
from fleet.uplink.protocol import Hello, parse_records
from pki import ca
from tests.factories import GatewayFactory, SiteFactory, UserFactory, member
from tests.pki.fixtures import csr_pem

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(organization: Any) -> Any:
    admin = UserFactory(is_superuser=True)
    return services.create_program(
        organization=organization, name="Rule 21 curtailment", user=admin, default_max_lim_pct=100
    )


def test_operator_schedules_an_export_limit_tomorrow_with_randomization_through_the_api(
    clock: Any, users: dict[str, Any], api_client_for: Any, program: Any
) -> None:
    start = (timezone.now() + timedelta(days=1)).replace(hour=16, minute=0, second=0, microsecond=0)
    body = {
        "program": program.pk,
        "start": start.isoformat(),
        "duration_s": 4 * 3600,
        "export_limit_w": 2500,
        "randomize_start_s": 120,
        "description": "evening peak",
    }
    created = api_client_for(users["operator"]).post("/api/csip/controls/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["setpoint"] == "export ≤ 2500 W"
    control = DerControl.objects.get(pk=created.json()["id"])
    assert control.randomize_start_s == 120 and control.created_by == users["operator"].username

    assert api_client_for(users["viewer"]).post("/api/csip/controls/", body, format="json").status_code == 403
    both = {**body, "max_lim_pct": "50"}
    refused = api_client_for(users["operator"]).post("/api/csip/controls/", both, format="json")
    assert refused.status_code == 400 and "either" in refused.content.decode()

    cancelled = api_client_for(users["operator"]).post(f"/api/csip/controls/{control.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True


def test_programs_are_scoped_by_tenancy(
    users: dict[str, Any], api_client_for: Any, program: Any, other_organization: Any
) -> None:
    outsider = member(other_organization, "admin")
    names = [p["name"] for p in api_client_for(users["viewer"]).get("/api/csip/programs/").json()["results"]]
    assert names == ["Rule 21 curtailment"]
    assert api_client_for(outsider).get("/api/csip/programs/").json()["results"] == []


def test_the_gateway_gets_its_utility_certificate_by_csr_and_is_preregistered(
    client: Any, enrolled_gateway: Any
) -> None:
    key = ca.generate_key()
    response = client.post(
        "/gw/v1/csip/certificate",
        {"csr": csr_pem(key, enrolled_gateway.gateway.serial)},
        content_type="application/json",
        headers=enrolled_gateway.auth_headers(),
    )
    assert response.status_code == 201, response.content
    data = response.json()
    certificate = ca.load_certificate(data["certificate"])
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()  # the key stayed here
    device = EndDevice.objects.get(gateway=enrolled_gateway.gateway)
    assert device.lfdi == data["lfdi"] == ca.lfdi(certificate).upper()
    # Six digits, the last the sep2 check digit; an integer, so leading zeros do not show (012343 is 12343).
    digits = f"{device.pin:06d}"
    assert data["pin"] == device.pin < 1_000_000 and ca.check_digit(digits[:5]) == digits[5]
    assert data["dcap_path"] == "/sep2/dcap"

    wrong = client.post(
        "/gw/v1/csip/certificate",
        {"csr": csr_pem(key, "SOMEONE-ELSE")},
        content_type="application/json",
        headers=enrolled_gateway.auth_headers(),
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "serial_mismatch"
    assert client.post("/gw/v1/csip/certificate", {"csr": "x"}, content_type="application/json").status_code == 401


def test_link_state_reported_over_the_uplink_shows_on_the_gateway_pages(
    clock: Any, client: Any, users: dict[str, Any], program: Any, enroll_utility_identity: Any
) -> None:
    gateway = GatewayFactory(organization=program.organization, site=SiteFactory(organization=program.organization))
    device = enroll_utility_identity(gateway).end_device
    now = timezone.now()
    control = services.create_control(
        program=program, start=now + timedelta(minutes=5), duration_s=600, max_lim_pct=40, user=users["admin"], now=now
    )
    DerControlResponse.objects.create(
        control=control, subject_mrid=control.mrid, end_device=device, status=2, created_date_time=now, received_at=now
    )
    uplink.open_stream(gateway=gateway, hello=Hello(protocol=1, agent_version="0.5.0", stream="q-1", last_acked_seq=0))
    status = {
        "state": "following",
        "detail": "event control of Rule 21 curtailment",
        "server": "https://x",
        "lfdi": device.lfdi,
        "program": "Rule 21 curtailment",
        "applied_limit_pct": 40.0,
        "control": {"source": "event", "mrid": control.mrid, "description": ""},
        "responses": [],
    }
    records = [{"seq": 1, "kind": "event", "ts": now.isoformat(), "payload": {"name": "csip.link", "data": status}}]
    uplink.ingest_batch(gateway=gateway, stream="q-1", parsed=parse_records(records, now=now), now=now)
    device.refresh_from_db()
    assert device.link_state == "following"

    client.force_login(users["viewer"])
    page = client.get(f"/gateways/{gateway.pk}/").content.decode()
    assert "Utility link (IEEE 2030.5)" in page and "following" in page and "2 · started" in page
    assert "following" in client.get("/gateways/").content.decode()
    detail = client.get(f"/csip/controls/{control.pk}").content.decode()
    assert "started" in detail and gateway.serial in detail


def test_operator_schedules_a_curtailment_in_the_web_ui(
    clock: Any, client: Any, users: dict[str, Any], program: Any
) -> None:
    client.force_login(users["operator"])
    assert "Rule 21 curtailment" in client.get("/csip/").content.decode()
    start = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d 16:00")
    form = {
        "kind": "curtail",
        "value": "60",
        "start": start,
        "duration_minutes": 240,
        "randomize_start_s": 60,
        "randomize_duration_s": 0,
        "description": "peak",
    }
    response = client.post(f"/csip/programs/{program.pk}/controls", form)
    control = DerControl.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/csip/controls/{control.pk}"
    assert control.max_lim_pct == 60 and control.duration_s == 4 * 3600
    client.force_login(users["viewer"])
    assert client.post(f"/csip/programs/{program.pk}/controls", form).status_code == 403
