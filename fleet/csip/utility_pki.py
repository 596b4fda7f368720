"""A test utility PKI for the head-end: a root CA that signs the head-end's TLS certificate and the
gateways' utility-link certificates (from their CSRs, so keys never leave the gateways).

Real deployments get utility-link certificates from the utility's or SunSpec's PKI; this CA stands
in for it in tests and the demo, under GRIDFLEET_VAR_DIR/csip. Its key is kept as a 0600 file
there, which is fine for a test PKI and nothing else (docs/utility-link.md).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings

from pki import ca

CA_DAYS = 10 * 365
SERVER_DAYS = 2 * 365


@dataclass(frozen=True)
class UtilityPki:
    directory: Path

    @property
    def ca_certificate_path(self) -> Path:
        return self.directory / "utility-ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "utility-ca.key"

    @property
    def server_certificate_path(self) -> Path:
        return self.directory / "headend.pem"

    @property
    def server_key_path(self) -> Path:
        return self.directory / "headend.key"

    def ca_certificate(self) -> x509.Certificate:
        return ca.load_certificate(self.ca_certificate_path.read_bytes())

    def ca_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def test_utility_pki(*, now: datetime, directory: Path | None = None) -> UtilityPki:
    """The test utility PKI, created on first use: CA, and the head-end's server certificate."""
    pki = UtilityPki(directory or Path(settings.GRIDFLEET_VAR_DIR) / "csip")
    pki.directory.mkdir(parents=True, exist_ok=True)
    if not pki.ca_certificate_path.exists():
        key = ca.generate_key()
        cert = ca.create_root_ca(
            key=key, common_name="Gridfleet test utility CA", organization="Gridfleet", now=now, days=CA_DAYS
        )
        _write_key(pki.ca_key_path, key)
        pki.ca_certificate_path.write_text(ca.certificate_pem(cert))
    if not pki.server_certificate_path.exists():
        key = ca.generate_key()
        cert = issue_server_certificate(pki, key.public_key(), now=now)
        _write_key(pki.server_key_path, key)
        pki.server_certificate_path.write_text(ca.certificate_pem(cert) + ca.certificate_pem(pki.ca_certificate()))
    return pki


def issue_server_certificate(
    pki: UtilityPki, public_key: ec.EllipticCurvePublicKey, *, now: datetime
) -> x509.Certificate:
    host = settings.GRIDFLEET_CSIP_HOST
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    issuer = pki.ca_certificate()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gridfleet CSIP head-end")]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=SERVER_DAYS), issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(pki.ca_key(), ca.SIGNATURE_HASH())
    )


def issue_client_certificate(
    pki: UtilityPki, *, csr_pem: str, serial: str, now: datetime, days: int
) -> x509.Certificate:
    """A utility-link client certificate for the key in `csr_pem` (P-256, CN = gateway serial)."""
    csr = ca.load_csr(csr_pem, expected_common_name=serial)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return ca.issue_device_certificate(
        public_key=public_key,
        serial=serial,
        issuer_certificate=pki.ca_certificate(),
        issuer_key=pki.ca_key(),
        now=now,
        days=days,
    )
