"""Gateway identity end to end over real HTTP: the agent enrolls, authenticates, renews; the server
refuses every bad credential with the documented error code and audits it."""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone
from gridfleet_agent import identity as agent_identity

from fleet.accounts.authorization import SYSTEM
from fleet.audit.models import AuditEntry
from pki import ca, conf, services
from pki.models import AccessToken, CertificateAuthority, DeviceCertificate, EnrollmentToken
from tests.factories import GatewayFactory
from tests.pki.fixtures import EnrolledGateway, csr_pem, signed_auth_request

pytestmark = pytest.mark.django_db(transaction=True)


def refusal(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["detail"], "a refusal must say what to change"
    return body


def audited(action: str, error: str) -> AuditEntry:
    entry = AuditEntry.objects.filter(action=action, detail__error=error).first()
    assert entry is not None, f"no {action} audit entry with error {error}"
    return entry


def token_for(serial: str, **kwargs: Any) -> str:
    gateway = GatewayFactory(serial=serial)
    return services.create_enrollment_token(organization=gateway.organization, serial=serial, user=SYSTEM, **kwargs)[1]


def test_agent_enrolls_authenticates_and_renews_over_http(live_server: Any, pki_ca: Any, tmp_path: Path) -> None:
    token = token_for("GW-E2E-1")

    identity = agent_identity.enroll(live_server.url, token, "GW-E2E-1", tmp_path, hardware_model="GF-100")

    files = tmp_path / "identity"
    for name in ("key.pem", "cert.pem", "identity.json"):
        assert stat.S_IMODE((files / name).stat().st_mode) == 0o600, name
    reloaded = agent_identity.Identity.load(tmp_path)
    assert reloaded.serial == "GW-E2E-1"
    certificate = DeviceCertificate.objects.get(gateway__serial="GW-E2E-1")
    assert reloaded.lfdi == certificate.lfdi
    assert certificate.sfdi == ca.sfdi_from_lfdi(certificate.lfdi)
    assert AuditEntry.objects.filter(action="pki.gateway.enrolled", actor_gateway=certificate.gateway).exists()

    bearer = reloaded.access_token()
    assert reloaded.access_token() == bearer, "the token is cached until close to expiry"
    me = httpx.get(f"{live_server.url}/gw/v1/identity", headers={"Authorization": f"Bearer {bearer}"})
    assert me.status_code == 200, me.text
    assert me.json()["serial"] == "GW-E2E-1"
    assert me.json()["lfdi"] == certificate.lfdi

    assert reloaded.renew_if_due() is False, "a fresh certificate is not renewed"
    assert reloaded.renew_if_due(now=datetime.now(UTC) + timedelta(days=250)) is True
    renewed = DeviceCertificate.objects.filter(gateway__serial="GW-E2E-1").order_by("-id").first()
    assert renewed is not None and renewed.pk != certificate.pk
    assert renewed.public_key_sha256 == certificate.public_key_sha256, "renewal keeps the key"
    assert agent_identity.Identity.load(tmp_path).certificate.serial_number == int(renewed.serial_number, 16)
    assert AuditEntry.objects.filter(action="pki.certificate.renew", target_id=str(renewed.pk)).exists()
    # The old certificate stays valid until it expires or is revoked.
    old = EnrolledGateway(gateway=certificate.gateway, certificate=certificate, private_key=identity.key)
    assert httpx.post(f"{live_server.url}/gw/v1/auth/token", json=old.signed_auth_request()).status_code == 200


def test_openssl_verifies_the_chain_the_agent_received(live_server: Any, pki_ca: Any, tmp_path: Path) -> None:
    agent_identity.enroll(live_server.url, token_for("GW-OSSL"), "GW-OSSL", tmp_path)
    files = tmp_path / "identity"
    chain = httpx.get(f"{live_server.url}/gw/v1/pki/ca-chain.pem").text
    root_pem = ca.certificate_pem(ca.load_certificates(chain)[-1])
    (tmp_path / "root.pem").write_text(root_pem)
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(files / "chain.pem"),
            "-purpose",
            "sslclient",
            str(files / "cert.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_revocation_is_immediate_and_published_in_the_crl(
    live_server: Any, enrolled_gateway: EnrolledGateway, admin_user: Any, tmp_path: Path
) -> None:
    bearer = enrolled_gateway.access_token()
    headers = {"Authorization": f"Bearer {bearer}"}
    assert httpx.get(f"{live_server.url}/gw/v1/identity", headers=headers).status_code == 200

    services.revoke_certificate(certificate=enrolled_gateway.certificate, reason="key_compromise", user=admin_user)

    refused = httpx.get(f"{live_server.url}/gw/v1/identity", headers=headers)
    refusal(refused, 401, "certificate_revoked")
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    refusal(
        httpx.post(f"{live_server.url}/gw/v1/auth/token", json=enrolled_gateway.signed_auth_request()),
        401,
        "certificate_revoked",
    )
    audited("pki.auth.refused", "certificate_revoked")
    assert AuditEntry.objects.filter(action="pki.certificate.revoke", actor_user=admin_user).exists()

    crl = httpx.get(f"{live_server.url}/gw/v1/pki/crl.der")
    assert crl.headers["Content-Type"] == "application/pkix-crl"
    (tmp_path / "crl.der").write_bytes(crl.content)
    (tmp_path / "chain.pem").write_text(httpx.get(f"{live_server.url}/gw/v1/pki/ca-chain.pem").text)
    result = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "crl.der"),
            "-noout",
            "-text",
            "-CAfile",
            str(tmp_path / "chain.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr
    assert enrolled_gateway.certificate.serial_number.upper() in result.stdout.replace(":", "").upper()
    assert "Key Compromise" in result.stdout
    pem = httpx.get(f"{live_server.url}/gw/v1/pki/crl.pem").text
    assert pem.startswith("-----BEGIN X509 CRL-----")


# --- enrollment refusals ---------------------------------------------------------------------


def enroll_body(serial: str, token: str, key: ec.EllipticCurvePrivateKey | None = None) -> dict[str, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return {"serial": serial, "token": token, "csr": csr_pem(key, serial)}


def test_an_enrollment_token_works_once(live_server: Any, pki_ca: Any) -> None:
    token = token_for("GW-ONCE")
    first = httpx.post(f"{live_server.url}/gw/v1/enroll", json=enroll_body("GW-ONCE", token))
    assert first.status_code == 201, first.text
    assert first.json()["lfdi"] == DeviceCertificate.objects.get(gateway__serial="GW-ONCE").lfdi
    refusal(httpx.post(f"{live_server.url}/gw/v1/enroll", json=enroll_body("GW-ONCE", token)), 401, "token_used")
    audited("pki.enroll.refused", "token_used")


def test_enrollment_refusals(live_server: Any, pki_ca: Any) -> None:
    url = f"{live_server.url}/gw/v1/enroll"
    refusal(httpx.post(url, json=enroll_body("GW-X", "gfe_nope")), 401, "invalid_token")
    audited("pki.enroll.refused", "invalid_token")

    expired = token_for("GW-LATE")
    EnrollmentToken.objects.filter(serial="GW-LATE").update(expires_at=timezone.now() - timedelta(minutes=1))
    refusal(httpx.post(url, json=enroll_body("GW-LATE", expired)), 401, "token_expired")
    audited("pki.enroll.refused", "token_expired")

    other = token_for("GW-A")
    refusal(httpx.post(url, json=enroll_body("GW-B", other)), 403, "token_serial_mismatch")

    mismatched = token_for("GW-CN")
    body = {"serial": "GW-CN", "token": mismatched, "csr": csr_pem(ec.generate_private_key(ec.SECP256R1()), "GW-Z")}
    refusal(httpx.post(url, json=body), 400, "serial_mismatch")
    p384 = {"serial": "GW-CN", "token": mismatched, "csr": csr_pem(ec.generate_private_key(ec.SECP384R1()), "GW-CN")}
    refusal(httpx.post(url, json=p384), 400, "invalid_csr")
    refusal(httpx.post(url, json={"serial": "GW-CN", "token": mismatched, "csr": "junk"}), 400, "invalid_csr")
    refusal(httpx.post(url, json={"serial": "GW-CN"}), 400, "invalid_request")
    refusal(httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400, "invalid_request")
    # None of the refused attempts consumed the token.
    assert httpx.post(url, json=enroll_body("GW-CN", mismatched)).status_code == 201


def test_reenrollment_needs_an_explicit_token_and_supersedes_the_old_certificate(
    live_server: Any, enrolled_gateway: EnrolledGateway, admin_user: Any
) -> None:
    gateway = enrolled_gateway.gateway
    url = f"{live_server.url}/gw/v1/enroll"
    _, plain = services.create_enrollment_token(organization=gateway.organization, serial=gateway.serial, user=SYSTEM)
    refusal(httpx.post(url, json=enroll_body(gateway.serial, plain)), 409, "already_enrolled")

    _, explicit = services.create_enrollment_token(
        organization=gateway.organization, serial=gateway.serial, user=admin_user, reenroll=True
    )
    assert httpx.post(url, json=enroll_body(gateway.serial, explicit)).status_code == 201
    enrolled_gateway.certificate.refresh_from_db()
    assert enrolled_gateway.certificate.status == DeviceCertificate.Status.REVOKED
    assert enrolled_gateway.certificate.revocation_reason == "superseded"
    assert AuditEntry.objects.filter(action="pki.gateway.reenrolled", actor_gateway=gateway).exists()


def test_operator_acceptance_holds_the_certificate_until_accepted(
    live_server: Any, pki_ca: Any, settings: Any, admin_user: Any, tmp_path: Path
) -> None:
    settings.GRIDFLEET_PKI_REQUIRE_ACCEPTANCE = True
    token = token_for("GW-WAIT")
    with pytest.raises(agent_identity.EnrollmentPending) as pending:
        agent_identity.enroll(live_server.url, token, "GW-WAIT", tmp_path)
    request_id = pending.value.request_id
    assert httpx.get(f"{live_server.url}/gw/v1/enroll/{request_id}").status_code == 202

    from pki.models import EnrollmentRequest

    services.accept_enrollment_request(request=EnrollmentRequest.objects.get(public_id=request_id), user=admin_user)
    identity = agent_identity.complete_enrollment(tmp_path)
    assert identity.serial == "GW-WAIT"
    assert stat.S_IMODE((tmp_path / "identity" / "key.pem").stat().st_mode) == 0o600
    assert not (tmp_path / "identity" / "key.pending.pem").exists()


# --- authentication refusals -----------------------------------------------------------------


def auth(live_server: Any, body: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{live_server.url}/gw/v1/auth/token", json=body)


def test_a_signed_request_cannot_be_replayed(live_server: Any, enrolled_gateway: EnrolledGateway) -> None:
    body = enrolled_gateway.signed_auth_request()
    assert auth(live_server, body).status_code == 200
    refusal(auth(live_server, body), 401, "replayed_request")
    entry = audited("pki.auth.refused", "replayed_request")
    assert entry.actor_gateway_id == enrolled_gateway.gateway.pk


def test_a_stale_or_tampered_request_is_refused(live_server: Any, enrolled_gateway: EnrolledGateway) -> None:
    refusal(auth(live_server, enrolled_gateway.signed_auth_request(iat=int(time.time()) - 3600)), 401, "stale_request")
    audited("pki.auth.refused", "stale_request")
    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = signed_auth_request(other_key, enrolled_gateway.certificate_pem, enrolled_gateway.gateway.serial)
    refusal(auth(live_server, forged), 401, "bad_signature")
    audited("pki.auth.refused", "bad_signature")
    refusal(auth(live_server, {"certificate": "x", "payload": "!!", "signature": "AA=="}), 400, "invalid_request")


def test_a_certificate_from_another_ca_is_refused(live_server: Any, enrolled_gateway: EnrolledGateway) -> None:
    now = datetime.now(UTC)
    rogue_root_key, rogue_key = ca.generate_key(), ca.generate_key()
    rogue_root = ca.create_root_ca(
        key=rogue_root_key, common_name="Gridfleet Test Root CA", organization=None, now=now, days=10
    )
    device_key = ca.generate_key()
    foreign = ca.issue_device_certificate(
        public_key=device_key.public_key(),
        serial=enrolled_gateway.gateway.serial,
        issuer_certificate=rogue_root,
        issuer_key=rogue_root_key,
        now=now,
        days=10,
    )
    del rogue_key
    body = signed_auth_request(device_key, ca.certificate_pem(foreign), enrolled_gateway.gateway.serial)
    refusal(auth(live_server, body), 401, "untrusted_issuer")
    audited("pki.auth.refused", "untrusted_issuer")


def issue_directly(pki_ca: CertificateAuthority, serial: str, *, now: datetime, days: int) -> tuple[str, Any]:
    """A certificate signed with our issuing key but never recorded (as a stolen CA key would make)."""
    key = ca.generate_key()
    cert = ca.issue_device_certificate(
        public_key=key.public_key(),
        serial=serial,
        issuer_certificate=pki_ca.certificate(),
        issuer_key=ca.decrypt_private_key(bytes(pki_ca.encrypted_key_pem), conf.kek()),
        now=now,
        days=days,
    )
    return ca.certificate_pem(cert), key


def test_unknown_and_expired_certificates_are_refused(
    live_server: Any, pki_ca: CertificateAuthority, enrolled_gateway: EnrolledGateway
) -> None:
    serial = enrolled_gateway.gateway.serial
    pem, key = issue_directly(pki_ca, serial, now=datetime.now(UTC), days=10)
    refusal(auth(live_server, signed_auth_request(key, pem, serial)), 401, "unknown_certificate")
    audited("pki.auth.refused", "unknown_certificate")

    expired_pem, expired_key = issue_directly(pki_ca, serial, now=datetime.now(UTC) - timedelta(days=30), days=1)
    refusal(auth(live_server, signed_auth_request(expired_key, expired_pem, serial)), 401, "certificate_expired")
    audited("pki.auth.refused", "certificate_expired")


def test_bearer_token_refusals(live_server: Any, enrolled_gateway: EnrolledGateway) -> None:
    url = f"{live_server.url}/gw/v1/identity"
    refusal(httpx.get(url, headers={"Authorization": "Bearer gfa_unknown"}), 401, "invalid_access_token")
    audited("pki.access_token.refused", "invalid_access_token")
    refusal(httpx.get(url), 401, "invalid_access_token")

    bearer = enrolled_gateway.access_token()
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    refusal(httpx.get(url, headers={"Authorization": f"Bearer {bearer}"}), 401, "access_token_expired")
    entry = audited("pki.access_token.refused", "access_token_expired")
    assert entry.actor_gateway_id == enrolled_gateway.gateway.pk


def test_renewal_must_keep_the_key(live_server: Any, enrolled_gateway: EnrolledGateway) -> None:
    headers = enrolled_gateway.auth_headers()
    url = f"{live_server.url}/gw/v1/certificate/renew"
    new_key = ec.generate_private_key(ec.SECP256R1())
    refusal(
        httpx.post(url, json={"csr": csr_pem(new_key, enrolled_gateway.gateway.serial)}, headers=headers),
        400,
        "key_mismatch",
    )
    audited("pki.renew.refused", "key_mismatch")
    same = httpx.post(
        url, json={"csr": csr_pem(enrolled_gateway.private_key, enrolled_gateway.gateway.serial)}, headers=headers
    )
    assert same.status_code == 201, same.text
    assert x509.load_pem_x509_certificate(same.json()["certificate"].encode()).public_key() == (
        enrolled_gateway.private_key.public_key()
    )


def test_enroll_gateway_factory_is_reusable(enroll_gateway: Callable[..., EnrolledGateway]) -> None:
    first, second = enroll_gateway(), enroll_gateway()
    assert first.gateway != second.gateway
    assert first.certificate.lfdi != second.certificate.lfdi


def test_agent_fetches_a_new_access_token_shortly_before_expiry(
    live_server: Any, pki_ca: Any, settings: Any, tmp_path: Path
) -> None:
    identity = agent_identity.enroll(live_server.url, token_for("GW-TTL"), "GW-TTL", tmp_path)
    settings.GRIDFLEET_PKI_ACCESS_TOKEN_TTL = 600
    long_lived = identity.access_token()
    assert identity.access_token() == long_lived
    identity.forget_access_token()
    settings.GRIDFLEET_PKI_ACCESS_TOKEN_TTL = 30  # inside the 60 s refresh margin: never reused
    short_lived = identity.access_token()
    assert identity.access_token() != short_lived
    assert AccessToken.objects.filter(gateway__serial="GW-TTL").count() == 3


def test_revoked_agent_is_told_to_reenroll(live_server: Any, pki_ca: Any, tmp_path: Path) -> None:
    identity = agent_identity.enroll(live_server.url, token_for("GW-GONE"), "GW-GONE", tmp_path)
    certificate = DeviceCertificate.objects.get(gateway__serial="GW-GONE")
    services.revoke_certificate(certificate=certificate, reason="privilege_withdrawn", user=SYSTEM)
    with pytest.raises(agent_identity.ReenrollmentNeeded) as refused:
        identity.access_token()
    assert refused.value.code == "certificate_revoked"


def test_oversized_claims_are_refused_and_audited_in_brief(live_server: Any, pki_ca: Any) -> None:
    body = {**enroll_body("GW-1", "gfe_x"), "serial": "X" * 100_000}
    refusal(httpx.post(f"{live_server.url}/gw/v1/enroll", json=body), 401, "invalid_token")
    entry = audited("pki.enroll.refused", "invalid_token")
    assert len(entry.detail["serial"]) <= 300
