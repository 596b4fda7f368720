"""PKI fixtures other apps' tests can load: `pytest_plugins = ["tests.pki.fixtures"]`.

- `pki_ca`: an initialized root + issuing CA (with a test key-encryption key).
- `enrolled_gateway`: a Gateway enrolled through the real enrollment service, with its private
  key; `.access_token()` gives a bearer token, `.auth_headers()` the HTTP/WebSocket header.
- `enroll_gateway(...)`: the same as a factory, for tests that need several gateways.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:  # models are imported lazily so the plugin loads before Django is set up
    from fleet.inventory.models import Gateway
    from pki.models import CertificateAuthority, DeviceCertificate

TEST_KEK = "test-key-encryption-key-0123456789abcdef"


def csr_pem(key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def signed_auth_request(
    key: ec.EllipticCurvePrivateKey,
    certificate_pem: str,
    serial: str,
    *,
    iat: int | None = None,
    nonce: str | None = None,
    chain_pem: str = "",
) -> dict[str, str]:
    """The body of POST /gw/v1/auth/token, built independently of the agent's implementation."""
    payload = json.dumps(
        {
            "typ": "gridfleet-gw-auth/v1",
            "serial": serial,
            "iat": int(time.time()) if iat is None else iat,
            "nonce": nonce or secrets.token_hex(16),
        }
    ).encode()
    return {
        "certificate": certificate_pem,
        "chain": chain_pem,
        "payload": base64.b64encode(payload).decode(),
        "signature": base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode(),
    }


@dataclass
class EnrolledGateway:
    gateway: Gateway
    certificate: DeviceCertificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> str:
        return self.certificate.certificate_pem

    @property
    def private_key_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def access_token(self) -> str:
        return mint_access_token(gateway=self.gateway)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def signed_auth_request(self, **kwargs: Any) -> dict[str, str]:
        return signed_auth_request(self.private_key, self.certificate_pem, self.gateway.serial, **kwargs)


@pytest.fixture
def pki_ca(db: None, settings: Any) -> CertificateAuthority:
    from pki import services

    settings.GRIDFLEET_PKI_KEK = TEST_KEK
    return services.initialize_ca(name="Gridfleet Test")


@pytest.fixture
def enroll_gateway(pki_ca: CertificateAuthority) -> Callable[..., EnrolledGateway]:
    from fleet.accounts.authorization import SYSTEM
    from pki import services
    from tests.factories import GatewayFactory

    def make(gateway: Gateway | None = None, **gateway_fields: Any) -> EnrolledGateway:
        gateway = gateway or GatewayFactory(**gateway_fields)
        key = ec.generate_private_key(ec.SECP256R1())
        _, token = services.create_enrollment_token(
            organization=gateway.organization, serial=gateway.serial, user=SYSTEM
        )
        outcome = services.enroll(serial=gateway.serial, token=token, csr_pem=csr_pem(key, gateway.serial))
        assert outcome.certificate is not None, "enroll_gateway needs GRIDFLEET_PKI_REQUIRE_ACCEPTANCE off"
        gateway.refresh_from_db()
        return EnrolledGateway(gateway=gateway, certificate=outcome.certificate, private_key=key)

    return make


@pytest.fixture
def enrolled_gateway(enroll_gateway: Callable[..., EnrolledGateway]) -> EnrolledGateway:
    return enroll_gateway()


def mint_access_token(*, gateway: Any) -> str:
    """A bearer token for the gateway's newest usable certificate, as if it had signed an auth request.

    Test-only: it skips the proof of possession a gateway gives (authenticate_signed_request), so it
    lives here and not among the services.
    """
    from pki.services.authentication import _check_usable, _create_access_token
    from pki.services.certificates import _active_certificates

    certificate = _active_certificates(gateway).select_related("gateway").order_by("-not_before").first()
    assert certificate is not None, f"gateway {gateway.serial} has no active certificate"
    _check_usable(certificate)
    return _create_access_token(certificate).token
