"""The PKI REST API: admins manage tokens, certificates and trust anchors; everyone else is refused."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleet.accounts.authorization import SYSTEM
from fleet.accounts.roles import Role
from fleet.audit.models import AuditEntry
from pki import ca, services
from pki.models import DeviceCertificate, EnrollmentToken, TrustAnchor
from tests.factories import GatewayFactory, member
from tests.pki.fixtures import EnrolledGateway, csr_pem

NON_ADMINS = [Role.OPERATOR, Role.TECHNICIAN, Role.VIEWER]


@pytest.mark.parametrize("role", NON_ADMINS)
@pytest.mark.parametrize(
    "path",
    [
        "/api/pki/certificates/",
        "/api/pki/enrollment-tokens/",
        "/api/pki/enrollment-requests/",
        "/api/pki/trust-anchors/",
        "/api/pki/authorities/",
    ],
)
def test_non_admins_cannot_read_the_pki(role: str, path: str, users: dict[str, Any], api_client_for: Any) -> None:
    assert api_client_for(users[role]).get(path).status_code == 403


@pytest.mark.parametrize("role", NON_ADMINS)
def test_non_admins_cannot_issue_tokens_or_revoke(
    role: str, users: dict[str, Any], api_client_for: Any, organization: Any, enroll_gateway: Any
) -> None:
    client = api_client_for(users[role])
    enrolled = enroll_gateway(organization=organization)
    response = client.post("/api/pki/enrollment-tokens/", {"organization": organization.slug, "serial": "GW-NOPE"})
    assert response.status_code == 403
    response = client.post(f"/api/pki/certificates/{enrolled.certificate.pk}/revoke/", {"reason": "superseded"})
    assert response.status_code == 403
    enrolled.certificate.refresh_from_db()
    assert enrolled.certificate.status == DeviceCertificate.Status.ACTIVE
    assert not EnrollmentToken.objects.filter(serial="GW-NOPE").exists()


def test_anonymous_is_refused(client: Any) -> None:
    assert client.get("/api/pki/certificates/").status_code in (401, 403)


def test_admin_creates_a_token_that_is_shown_once(
    users: dict[str, Any], api_client_for: Any, organization: Any, pki_ca: Any
) -> None:
    admin = api_client_for(users[Role.ADMIN])
    response = admin.post(
        "/api/pki/enrollment-tokens/",
        {"organization": organization.slug, "serial": "GW-NEW-1", "valid_hours": 2},
        format="json",
    )
    assert response.status_code == 201, response.content
    secret = response.json()["token"]
    assert secret.startswith("gfe_")
    listed = admin.get("/api/pki/enrollment-tokens/").json()["results"]
    assert listed[0]["serial"] == "GW-NEW-1" and listed[0]["state"] == "unused"
    assert "token" not in listed[0], "the secret is never shown again"
    assert secret not in str(AuditEntry.objects.filter(action="pki.enrollment_token.create").values())
    # The token enrolls a gateway that was not in the inventory yet, in the token's organization.
    outcome = services.enroll(serial="GW-NEW-1", token=secret, csr_pem=csr_pem(ca.generate_key(), "GW-NEW-1"))
    assert outcome.certificate is not None
    assert outcome.certificate.gateway.organization == organization


def test_token_for_a_serial_of_another_organization_is_refused(
    users: dict[str, Any], api_client_for: Any, organization: Any, other_organization: Any
) -> None:
    GatewayFactory(organization=other_organization, serial="GW-THEIRS")
    admin = api_client_for(users[Role.ADMIN])
    response = admin.post("/api/pki/enrollment-tokens/", {"organization": organization.slug, "serial": "GW-THEIRS"})
    assert response.status_code == 400
    assert "another organization" in str(response.json())
    response = admin.post("/api/pki/enrollment-tokens/", {"organization": other_organization.slug, "serial": "GW-X"})
    assert response.status_code == 403, "admin of one organization cannot issue tokens for another"


def test_batch_tokens_come_back_as_csv(users: dict[str, Any], api_client_for: Any, organization: Any) -> None:
    admin = api_client_for(users[Role.ADMIN])
    response = admin.post(
        "/api/pki/enrollment-tokens/batch/",
        {"organization": organization.slug, "serials": ["GW-B1", "GW-B2", "GW-B3"], "batch": "run-42"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["serial"] for r in rows] == ["GW-B1", "GW-B2", "GW-B3"]
    assert len({r["token"] for r in rows}) == 3
    assert EnrollmentToken.objects.filter(batch="run-42").count() == 3
    assert AuditEntry.objects.filter(action="pki.enrollment_token.create_batch").exists()


def test_a_batch_with_a_bad_serial_creates_nothing(
    users: dict[str, Any], api_client_for: Any, organization: Any
) -> None:
    response = api_client_for(users[Role.ADMIN]).post(
        "/api/pki/enrollment-tokens/batch/",
        {"organization": organization.slug, "serials": ["GW-OK", "bad serial!"]},
        format="json",
    )
    assert response.status_code == 400
    assert "bad serial!" in str(response.json())
    assert not EnrollmentToken.objects.exists()


def test_admin_revokes_with_a_reason_and_sees_it(
    users: dict[str, Any], api_client_for: Any, organization: Any, enroll_gateway: Any
) -> None:
    enrolled: EnrolledGateway = enroll_gateway(organization=organization)
    admin = api_client_for(users[Role.ADMIN])
    url = f"/api/pki/certificates/{enrolled.certificate.pk}/revoke/"
    assert admin.post(url, {"reason": "made-up"}).status_code == 400
    response = admin.post(url, {"reason": "cessation_of_operation"})
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "revoked"
    assert response.json()["revocation_reason"] == "cessation_of_operation"
    assert admin.post(url, {"reason": "superseded"}).status_code == 400, "already revoked"
    entry = AuditEntry.objects.get(action="pki.certificate.revoke")
    assert entry.actor_user == users[Role.ADMIN]


def test_certificates_are_scoped_to_the_admins_organizations(
    users: dict[str, Any], api_client_for: Any, organization: Any, other_organization: Any, enroll_gateway: Any
) -> None:
    ours = enroll_gateway(organization=organization)
    theirs = enroll_gateway(organization=other_organization)
    admin = api_client_for(users[Role.ADMIN])
    listed = [c["id"] for c in admin.get("/api/pki/certificates/").json()["results"]]
    assert listed == [ours.certificate.pk]
    assert admin.get(f"/api/pki/certificates/{theirs.certificate.pk}/").status_code == 404
    assert (
        admin.post(f"/api/pki/certificates/{theirs.certificate.pk}/revoke/", {"reason": "unspecified"}).status_code
        == 404
    )


def test_search_certificates_and_gateways_by_lfdi_and_sfdi(
    users: dict[str, Any], api_client_for: Any, organization: Any, enroll_gateway: Any
) -> None:
    target = enroll_gateway(organization=organization)
    enroll_gateway(organization=organization)
    admin = api_client_for(users[Role.ADMIN])
    lfdi, sfdi = target.certificate.lfdi, target.certificate.sfdi
    for query in (f"lfdi={lfdi.upper()}", f"sfdi={sfdi}", f"fingerprint={lfdi}", f"q={sfdi}"):
        found = admin.get(f"/api/pki/certificates/?{query}").json()["results"]
        assert [c["gateway_serial"] for c in found] == [target.gateway.serial], query
    grouped = "-".join(sfdi[i : i + 3] for i in range(0, 12, 3))
    for value in (lfdi, sfdi, grouped):
        viewer = api_client_for(users[Role.VIEWER])
        found = viewer.get("/api/inventory/gateways/", {"q": value}).json()["results"]
        assert [g["serial"] for g in found] == [target.gateway.serial], value


def test_ca_overview_lists_root_and_issuing(users: dict[str, Any], api_client_for: Any, pki_ca: Any) -> None:
    body = api_client_for(users[Role.ADMIN]).get("/api/pki/authorities/").json()["results"]
    assert sorted(a["kind"] for a in body) == ["issuing", "root"]
    assert all("encrypted_key_pem" not in a for a in body)


# --- external trust anchors ------------------------------------------------------------------


def manufacturer_pki() -> tuple[Any, Any]:
    now = datetime.now(UTC)
    key = ca.generate_key()
    root = ca.create_root_ca(key=key, common_name="Acme Manufacturing Root", organization="Acme", now=now, days=30)
    return root, key


def test_gateway_with_a_certificate_from_an_imported_anchor_authenticates(
    users: dict[str, Any], api_client_for: Any, organization: Any, pki_ca: Any, client: Any
) -> None:
    root, root_key = manufacturer_pki()
    gateway = GatewayFactory(organization=organization, serial="ACME-0001")
    device_key = ca.generate_key()
    device = ca.issue_device_certificate(
        public_key=device_key.public_key(),
        serial="ACME-0001",
        issuer_certificate=root,
        issuer_key=root_key,
        now=datetime.now(UTC),
        days=10,
    )
    from tests.pki.fixtures import signed_auth_request

    body = signed_auth_request(device_key, ca.certificate_pem(device), "ACME-0001")
    refused = client.post("/gw/v1/auth/token", body, content_type="application/json")
    assert refused.status_code == 401 and refused.json()["error"] == "untrusted_issuer"

    admin = api_client_for(users[Role.ADMIN])
    response = admin.post(
        "/api/pki/trust-anchors/",
        {"organization": organization.slug, "name": "Acme", "certificate_pem": ca.certificate_pem(root)},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert AuditEntry.objects.filter(action="pki.trust_anchor.import").exists()

    body = signed_auth_request(device_key, ca.certificate_pem(device), "ACME-0001")
    accepted = client.post("/gw/v1/auth/token", body, content_type="application/json")
    assert accepted.status_code == 200, accepted.content
    recorded = DeviceCertificate.objects.get(gateway=gateway)
    assert recorded.is_external and recorded.lfdi == ca.lfdi(device)

    # Admins see and can revoke it like any other certificate.
    admin.post(f"/api/pki/certificates/{recorded.pk}/revoke/", {"reason": "key_compromise"})
    body = signed_auth_request(device_key, ca.certificate_pem(device), "ACME-0001")
    assert client.post("/gw/v1/auth/token", body, content_type="application/json").json()["error"] == (
        "certificate_revoked"
    )


def test_an_anchor_of_another_organization_does_not_vouch_for_our_gateways(
    organization: Any, other_organization: Any, pki_ca: Any, client: Any
) -> None:
    root, root_key = manufacturer_pki()
    services.import_trust_anchor(
        organization=other_organization, name="Theirs", certificate_pem=ca.certificate_pem(root), user=SYSTEM
    )
    GatewayFactory(organization=organization, serial="ACME-0002")
    device_key = ca.generate_key()
    device = ca.issue_device_certificate(
        public_key=device_key.public_key(),
        serial="ACME-0002",
        issuer_certificate=root,
        issuer_key=root_key,
        now=datetime.now(UTC),
        days=10,
    )
    from tests.pki.fixtures import signed_auth_request

    body = signed_auth_request(device_key, ca.certificate_pem(device), "ACME-0002")
    response = client.post("/gw/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 401 and response.json()["error"] == "unknown_gateway"


def test_a_leaf_certificate_is_not_accepted_as_trust_anchor(
    users: dict[str, Any], api_client_for: Any, organization: Any, enrolled_gateway: EnrolledGateway
) -> None:
    response = api_client_for(users[Role.ADMIN]).post(
        "/api/pki/trust-anchors/",
        {"organization": organization.slug, "certificate_pem": enrolled_gateway.certificate_pem},
        format="json",
    )
    assert response.status_code == 400
    assert "CA certificate" in str(response.json())
    assert not TrustAnchor.objects.exists()


def test_deployment_wide_anchors_are_for_superusers(
    users: dict[str, Any], api_client_for: Any, organization: Any
) -> None:
    root, _ = manufacturer_pki()
    body = {"organization": None, "certificate_pem": ca.certificate_pem(root)}
    assert api_client_for(users[Role.ADMIN]).post("/api/pki/trust-anchors/", body, format="json").status_code == 403
    superuser = member(organization, Role.VIEWER)
    superuser.is_superuser = True
    superuser.save()
    assert api_client_for(superuser).post("/api/pki/trust-anchors/", body, format="json").status_code == 201


def test_acceptance_flow_through_the_api(
    users: dict[str, Any], api_client_for: Any, organization: Any, pki_ca: Any, settings: Any, client: Any
) -> None:
    settings.GRIDFLEET_PKI_REQUIRE_ACCEPTANCE = True
    _, secret = services.create_enrollment_token(organization=organization, serial="GW-ACC", user=SYSTEM)
    key = ec.generate_private_key(ec.SECP256R1())
    pending = client.post(
        "/gw/v1/enroll",
        {"serial": "GW-ACC", "token": secret, "csr": csr_pem(key, "GW-ACC")},
        content_type="application/json",
    )
    assert pending.status_code == 202
    request_id = pending.json()["request_id"]
    admin = api_client_for(users[Role.ADMIN])
    [listed] = admin.get("/api/pki/enrollment-requests/?status=pending").json()["results"]
    assert (
        api_client_for(users[Role.OPERATOR]).post(f"/api/pki/enrollment-requests/{listed['id']}/accept/").status_code
        == 403
    )
    assert admin.post(f"/api/pki/enrollment-requests/{listed['id']}/reject/").status_code == 200
    rejected = client.get(f"/gw/v1/enroll/{request_id}")
    assert rejected.status_code == 403 and rejected.json()["error"] == "enrollment_rejected"
    assert admin.post(f"/api/pki/enrollment-requests/{listed['id']}/accept/").status_code == 400


def test_a_factory_sized_batch_is_quick(
    users: dict[str, Any], api_client_for: Any, organization: Any, django_assert_max_num_queries: Any
) -> None:
    serials = [f"GW-F{n:05d}" for n in range(2000)]
    admin = api_client_for(users[Role.ADMIN])
    with django_assert_max_num_queries(30):
        response = admin.post(
            "/api/pki/enrollment-tokens/batch/", {"organization": organization.slug, "serials": serials}, format="json"
        )
    assert response.status_code == 201
    assert EnrollmentToken.objects.filter(organization=organization).count() == 2000
