"""The PKI pages: admins manage certificates and tokens; other roles are refused."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from fleet.accounts.authorization import SYSTEM
from fleet.accounts.roles import Role
from fleet.audit.models import AuditEntry
from pki import ca, services
from pki.models import DeviceCertificate, EnrollmentToken, TrustAnchor
from tests.pki.fixtures import EnrolledGateway

pytestmark = pytest.mark.django_db


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.TECHNICIAN, Role.VIEWER])
@pytest.mark.parametrize("path", ["/pki/", "/pki/certificates/", "/pki/tokens/", "/pki/trust-anchors/import/"])
def test_non_admins_are_refused_the_pki_pages(role: str, path: str, users: dict[str, Any]) -> None:
    assert logged_in(users[role]).get(path).status_code == 403


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_non_admins_cannot_revoke_or_create_tokens(
    role: str, users: dict[str, Any], organization: Any, enroll_gateway: Any
) -> None:
    enrolled: EnrolledGateway = enroll_gateway(organization=organization)
    client = logged_in(users[role])
    assert (
        client.post(f"/pki/certificates/{enrolled.certificate.pk}/revoke/", {"reason": "unspecified"}).status_code
        == 403
    )
    assert (
        client.post("/pki/tokens/", {"organization": organization.pk, "serial": "GW-1", "valid_hours": 1}).status_code
        == 403
    )
    enrolled.certificate.refresh_from_db()
    assert enrolled.certificate.status == DeviceCertificate.Status.ACTIVE


def test_anonymous_is_sent_to_login(client: Client) -> None:
    response = client.get("/pki/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_overview_shows_the_cas_and_download_links(users: dict[str, Any], pki_ca: Any, enrolled_gateway: Any) -> None:
    page = logged_in(users[Role.ADMIN]).get("/pki/").content.decode()
    assert pki_ca.name in page and pki_ca.parent.name in page
    for link in ("/gw/v1/pki/ca-chain.pem", "/gw/v1/pki/crl.der", "/gw/v1/pki/crl.pem"):
        assert link in page


def test_certificates_page_shows_lfdi_sfdi_and_revokes_with_a_reason(
    users: dict[str, Any], organization: Any, enroll_gateway: Any
) -> None:
    enrolled: EnrolledGateway = enroll_gateway(organization=organization)
    client = logged_in(users[Role.ADMIN])
    page = client.get("/pki/certificates/", {"q": enrolled.certificate.sfdi}).content.decode()
    assert enrolled.certificate.lfdi in page and enrolled.certificate.sfdi in page
    assert enrolled.gateway.serial in page

    form = client.get(f"/pki/certificates/{enrolled.certificate.pk}/revoke/").content.decode()
    assert "Key compromise" in form
    response = client.post(f"/pki/certificates/{enrolled.certificate.pk}/revoke/", {"reason": "key_compromise"})
    assert response.status_code == 302
    enrolled.certificate.refresh_from_db()
    assert enrolled.certificate.revocation_reason == "key_compromise"
    assert AuditEntry.objects.filter(action="pki.certificate.revoke", actor_user=users[Role.ADMIN]).exists()


def test_gateway_page_shows_its_certificates_to_admins_only(
    users: dict[str, Any], organization: Any, enroll_gateway: Any
) -> None:
    enrolled: EnrolledGateway = enroll_gateway(organization=organization)
    url = f"/gateways/{enrolled.gateway.pk}/"
    assert enrolled.certificate.lfdi in logged_in(users[Role.ADMIN]).get(url).content.decode()
    assert enrolled.certificate.lfdi not in logged_in(users[Role.VIEWER]).get(url).content.decode()


def test_admin_creates_a_token_and_a_batch_csv(users: dict[str, Any], organization: Any) -> None:
    client = logged_in(users[Role.ADMIN])
    page = client.post("/pki/tokens/", {"organization": organization.pk, "serial": "GW-UI-1", "valid_hours": 24})
    assert page.status_code == 200
    assert EnrollmentToken.objects.filter(serial="GW-UI-1").exists()
    assert "gfe_" in page.content.decode(), "the new token is shown once"

    batch = client.post(
        "/pki/tokens/",
        {"organization": organization.pk, "serials": "GW-UI-2\nGW-UI-3\n", "batch": "line-7", "valid_hours": 24},
    )
    assert batch.status_code == 201 and batch["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(batch.content.decode())))
    assert [r["serial"] for r in rows] == ["GW-UI-2", "GW-UI-3"]

    bad = client.post(
        "/pki/tokens/", {"organization": organization.pk, "serial": "no spaces allowed", "valid_hours": 1}
    )
    assert bad.status_code == 400
    assert "A serial is" in bad.content.decode()


def test_admin_withdraws_an_unused_token_and_removes_an_anchor(
    users: dict[str, Any], organization: Any, other_organization: Any
) -> None:
    token, _ = services.create_enrollment_token(organization=organization, serial="GW-W", user=SYSTEM)
    client = logged_in(users[Role.ADMIN])
    assert client.post(f"/pki/tokens/{token.pk}/withdraw/").status_code == 302
    assert not EnrollmentToken.objects.filter(pk=token.pk).exists()
    assert AuditEntry.objects.filter(action="pki.enrollment_token.withdraw").exists()

    key = ca.generate_key()
    root = ca.create_root_ca(key=key, common_name="Acme", organization=None, now=datetime.now(UTC), days=5)
    ours = services.import_trust_anchor(
        organization=organization, name="ours", certificate_pem=ca.certificate_pem(root), user=SYSTEM
    )
    theirs = services.import_trust_anchor(
        organization=other_organization, name="theirs", certificate_pem=ca.certificate_pem(root), user=SYSTEM
    )
    assert client.post(f"/pki/trust-anchors/{theirs.pk}/remove/").status_code == 404
    assert client.post(f"/pki/trust-anchors/{ours.pk}/remove/").status_code == 302
    assert list(TrustAnchor.objects.values_list("name", flat=True)) == ["theirs"]
    assert logged_in(users[Role.VIEWER]).post(f"/pki/tokens/{token.pk}/withdraw/").status_code == 403
