"""Operating the PKI: CA creation command, key encryption at rest, CRL refresh task, WebSocket auth."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator
from cryptography import x509
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connections

from fleet.accounts.authorization import SYSTEM
from fleet.audit.models import AuditEntry
from pki import ca, conf, services, tasks
from pki.authentication import GatewayAuthMiddleware
from pki.models import CertificateAuthority, RevocationList
from tests.pki.fixtures import TEST_KEK, EnrolledGateway, csr_pem

pytestmark = pytest.mark.django_db


def test_pki_init_creates_root_and_issuing_ca_with_encrypted_keys(settings: Any, capsys: Any) -> None:
    settings.GRIDFLEET_PKI_KEK = TEST_KEK
    call_command("pki_init", "--name", "Acme Fleet")
    root = CertificateAuthority.objects.get(kind="root")
    issuing = CertificateAuthority.objects.get(kind="issuing")
    assert issuing.parent == root
    for authority in (root, issuing):
        stored = bytes(authority.encrypted_key_pem)
        assert stored.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert issuing.certificate().issuer == root.certificate().subject
    assert "Acme Fleet Root CA" in capsys.readouterr().out
    assert AuditEntry.objects.filter(action="pki.ca.create").exists()
    assert RevocationList.objects.filter(authority=issuing).exists(), "a CRL exists from the start"

    with pytest.raises(CommandError, match="already exists"):
        call_command("pki_init")
    call_command("pki_init", "--if-missing")
    assert CertificateAuthority.objects.count() == 2


def test_rotating_the_issuing_ca_keeps_earlier_certificates_valid_and_revocable(
    enrolled_gateway: EnrolledGateway, enroll_gateway: Any, client: Any
) -> None:
    old_ca = enrolled_gateway.certificate.issuer
    call_command("pki_init", "--rotate-issuing")
    new_ca = CertificateAuthority.objects.get(kind="issuing", is_active=True)
    assert new_ca != old_ca
    body = enrolled_gateway.signed_auth_request()
    assert client.post("/gw/v1/auth/token", body, content_type="application/json").status_code == 200
    assert enroll_gateway().certificate.issuer == new_ca, "only the newest issuing CA issues"

    services.revoke_certificate(certificate=enrolled_gateway.certificate, reason="superseded", user=SYSTEM)
    old_crl = x509.load_der_x509_crl(client.get(f"/gw/v1/pki/crl/{old_ca.pk}.der").content)
    assert old_crl.get_revoked_certificate_by_serial_number(int(enrolled_gateway.certificate.serial_number, 16))
    # crl.der is the active CA's; crl.pem carries every issuing CA's CRL for TLS terminators.
    active_crl = x509.load_der_x509_crl(client.get("/gw/v1/pki/crl.der").content)
    assert active_crl.issuer == new_ca.certificate().subject
    bundle = client.get("/gw/v1/pki/crl.pem").content
    assert bundle.count(b"-----BEGIN X509 CRL-----") == 2
    assert client.get("/gw/v1/pki/ca-bundle.pem").content.count(b"-----BEGIN CERTIFICATE-----") == 3
    assert client.get("/gw/v1/pki/crl/999999.der").status_code == 404


def test_certificates_name_their_issuers_crl_when_a_public_url_is_set(
    settings: Any, enroll_gateway: Any, client: Any
) -> None:
    settings.GRIDFLEET_PKI_PUBLIC_URL = "https://fleet.example.com/"
    enrolled = enroll_gateway()
    cert = x509.load_pem_x509_certificate(enrolled.certificate_pem.encode())
    [point] = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = point.full_name[0].value
    assert url == f"https://fleet.example.com/gw/v1/pki/crl/{enrolled.certificate.issuer_id}.der"
    response = client.get(url.removeprefix("https://fleet.example.com"))
    assert response.status_code == 200 and response["Content-Type"] == "application/pkix-crl"


def test_production_refuses_to_run_without_a_kek(settings: Any) -> None:
    settings.GRIDFLEET_PKI_KEK = ""
    settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured, match="GRIDFLEET_PKI_KEK"):
        conf.kek()
    settings.GRIDFLEET_PKI_KEK = "short"
    with pytest.raises(ImproperlyConfigured, match="at least"):
        conf.kek()


def test_debug_generates_a_private_development_kek_once(settings: Any, isolated_var_dir: Path) -> None:
    settings.GRIDFLEET_PKI_KEK = ""
    settings.DEBUG = True
    first = conf.kek()
    path = isolated_var_dir / conf.KEK_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert conf.kek() == first and len(first) >= conf.KEK_MIN_LENGTH


def test_ca_key_cannot_be_used_with_another_kek(settings: Any, pki_ca: Any) -> None:
    settings.GRIDFLEET_PKI_KEK = "another-key-encryption-key-0123456789abcdef"
    with pytest.raises(ImproperlyConfigured, match="does not decrypt"):
        services.initialize_ca(name="x", rotate_issuing=True)


def test_the_periodic_task_republishes_the_crl(enrolled_gateway: EnrolledGateway) -> None:
    before = RevocationList.objects.get()
    assert tasks.publish_crl.delay().get() == 1
    after = RevocationList.objects.get()
    assert after.number == before.number + 1
    crl = x509.load_der_x509_crl(bytes(after.der))
    assert crl.next_update_utc > crl.last_update_utc
    assert crl.is_signature_valid(enrolled_gateway.certificate.issuer.certificate().public_key())


def test_purge_drops_expired_tokens(enrolled_gateway: EnrolledGateway, settings: Any) -> None:
    settings.GRIDFLEET_PKI_ACCESS_TOKEN_TTL = -1
    enrolled_gateway.access_token()
    assert tasks.purge_expired_credentials.delay().get() == 1


class EchoGateway(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        if self.scope["gateway"] is None:
            await self.close(code=4401, reason=self.scope["gateway_auth_error"])
            return
        await self.accept()
        await self.send_json({"serial": self.scope["gateway"].serial})


@pytest.mark.django_db(transaction=True)
async def test_websocket_middleware_identifies_the_gateway(enroll_gateway: Any) -> None:
    enrolled = await sync_to_async(enroll_gateway)()
    token = await sync_to_async(enrolled.access_token)()
    app = GatewayAuthMiddleware(EchoGateway.as_asgi())
    communicator = WebsocketCommunicator(
        app, "/ws/gateway/v1/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from() == {"serial": enrolled.gateway.serial}
    await communicator.disconnect()

    refused = WebsocketCommunicator(app, "/ws/gateway/v1/", headers=[(b"authorization", b"Bearer gfa_forged")])
    connected, code = await refused.connect()
    assert not connected and code == 4401
    assert await sync_to_async(
        AuditEntry.objects.filter(action="pki.access_token.refused", detail__error="invalid_access_token").exists
    )()
    # The middleware's queries ran in the sync worker thread; close its connection before teardown.
    await sync_to_async(connections.close_all)()


# --- optional mutual TLS through a trusted TLS terminator ------------------------------------


def escaped(pem: str) -> str:
    from urllib.parse import quote

    return quote(pem, safe="")


def test_client_certificate_header_is_believed_only_from_trusted_proxies(
    enrolled_gateway: EnrolledGateway, settings: Any, client: Any
) -> None:
    settings.GRIDFLEET_PKI_CLIENT_CERT_HEADER = "X-Client-Cert"
    header = {"HTTP_X_CLIENT_CERT": escaped(enrolled_gateway.certificate_pem)}
    settings.TRUSTED_PROXIES = []
    response = client.get("/gw/v1/identity", **header)
    assert response.status_code == 401 and response.json()["error"] == "invalid_access_token"

    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = client.get("/gw/v1/identity", **header)
    assert response.status_code == 200, response.content
    assert response.json()["serial"] == enrolled_gateway.gateway.serial

    services.revoke_certificate(certificate=enrolled_gateway.certificate, reason="key_compromise", user=SYSTEM)
    response = client.get("/gw/v1/identity", **header)
    assert response.status_code == 401 and response.json()["error"] == "certificate_revoked"
    assert AuditEntry.objects.filter(action="pki.client_certificate.refused", detail__error="certificate_revoked")


def test_client_certificate_header_is_ignored_unless_configured(
    enrolled_gateway: EnrolledGateway, settings: Any, client: Any
) -> None:
    settings.GRIDFLEET_PKI_CLIENT_CERT_HEADER = ""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = client.get("/gw/v1/identity", HTTP_X_CLIENT_CERT=escaped(enrolled_gateway.certificate_pem))
    assert response.status_code == 401


def test_kek_rotation_reencrypts_every_ca_key(
    pki_ca: Any, settings: Any, monkeypatch: Any, enroll_gateway: Any
) -> None:
    new_kek = "a-brand-new-key-encryption-key-0123456789"
    settings.GRIDFLEET_PKI_KEK = new_kek
    monkeypatch.setenv("GRIDFLEET_PKI_OLD_KEK", "not-the-old-one-0123456789abcdefghijkl")
    with pytest.raises(CommandError, match="does not decrypt"):
        call_command("pki_rotate_kek")
    monkeypatch.setenv("GRIDFLEET_PKI_OLD_KEK", TEST_KEK)
    call_command("pki_rotate_kek")
    assert enroll_gateway().certificate.issuer == pki_ca, "the issuing CA works with the new KEK"
    settings.GRIDFLEET_PKI_KEK = TEST_KEK
    with pytest.raises(ImproperlyConfigured, match="pki_rotate_kek"):
        enroll_gateway()
    assert AuditEntry.objects.filter(action="pki.kek.rotate").count() == 1


def test_a_decommissioned_gateway_is_refused_everywhere(enrolled_gateway: EnrolledGateway, client: Any) -> None:
    bearer = enrolled_gateway.access_token()
    gateway = enrolled_gateway.gateway
    gateway.status = "decommissioned"
    gateway.save()
    response = client.get("/gw/v1/identity", HTTP_AUTHORIZATION=f"Bearer {bearer}")
    assert response.status_code == 401 and response.json()["error"] == "gateway_decommissioned"
    body = enrolled_gateway.signed_auth_request()
    response = client.post("/gw/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 403 and response.json()["error"] == "gateway_decommissioned"
    _, secret = services.create_enrollment_token(
        organization=gateway.organization, serial=gateway.serial, user=SYSTEM, reenroll=True
    )
    enroll = {"serial": gateway.serial, "token": secret, "csr": csr_pem(ca.generate_key(), gateway.serial)}
    response = client.post("/gw/v1/enroll", enroll, content_type="application/json")
    assert response.status_code == 403 and response.json()["error"] == "gateway_decommissioned"
