"""Pure X.509 operations: CA creation, device certificates, CRLs, chain checks, IEEE 2030.5 ids.

No Django and no database here, so every function is testable on its own and the services
module stays about policy (who may do what, what is recorded). All keys are ECDSA P-256 and all
signatures ECDSA with SHA-256, as IEEE 2030.5 / CSIP require.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.errors import (
    BadSignatureError,
    CertificateExpiredError,
    InvalidCertificateError,
    InvalidCSRError,
    SerialMismatchError,
    UntrustedIssuerError,
)

CURVE = ec.SECP256R1
SIGNATURE_HASH = hashes.SHA256
# Longest chain walked from a leaf to a trust anchor; real device PKIs use two or three levels.
MAX_CHAIN_DEPTH = 4


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE())


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, kek: bytes) -> bytes:
    """PKCS#8 PEM encrypted with the key-encryption key (PBKDF2 + AES-256).

    A standard container on purpose: an operator can recover a CA key with
    `openssl pkey -in key.pem` and the KEK if Gridfleet itself is gone.
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(kek),
    )


def decrypt_private_key(pem: bytes, kek: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=kek)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("CA key is not an EC key")
    return key


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_certificate(pem: str | bytes) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise InvalidCertificateError(f"Not a PEM X.509 certificate: {e}") from e


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (empty input gives an empty list)."""
    data = pem.encode() if isinstance(pem, str) else pem
    if not data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise InvalidCertificateError(f"Not a PEM certificate bundle: {e}") from e


def common_name(name: x509.Name) -> str | None:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else None


def public_key_sha256(key: ec.EllipticCurvePublicKey) -> str:
    """Fingerprint of a SubjectPublicKeyInfo: ties a renewal CSR to the key already certified."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def certificate_sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


# --- IEEE 2030.5 identifiers -----------------------------------------------------------------


def lfdi(cert: x509.Certificate) -> str:
    """Long-form device identifier: the first 160 bits of SHA-256 over the certificate DER."""
    return certificate_sha256(cert)[:40]


def check_digit(digits: str) -> str:
    """The digit that makes the plain digit sum a multiple of 10 (IEEE 2030.5; not Luhn)."""
    return str(-sum(int(d) for d in digits) % 10)


SFDI_HEX_DIGITS = 9  # the first 36 bits of the LFDI


def sfdi_from_lfdi(value: str) -> str:
    """Short-form device identifier: first 36 bits of the LFDI in decimal plus a check digit."""
    if len(value) < SFDI_HEX_DIGITS:
        raise ValueError("An LFDI has 40 hex digits")
    number = str(int(value[:SFDI_HEX_DIGITS], 16))
    return (number + check_digit(number)).zfill(12)


# --- certificate authorities -----------------------------------------------------------------


def _name(common: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _ca_builder(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    days: int,
    path_length: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def create_root_ca(
    *, key: ec.EllipticCurvePrivateKey, common_name: str, organization: str | None, now: datetime, days: int
) -> x509.Certificate:
    subject = _name(common_name, organization)
    builder = _ca_builder(
        subject=subject, issuer=subject, public_key=key.public_key(), not_before=now, days=days, path_length=1
    )
    return builder.sign(key, SIGNATURE_HASH())


def create_issuing_ca(
    *,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organization: str | None,
    root_certificate: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    days: int,
) -> x509.Certificate:
    # Never outlive the root: a chain is only as valid as its shortest link.
    days = min(days, (root_certificate.not_valid_after_utc - now).days)
    builder = _ca_builder(
        subject=_name(common_name, organization),
        issuer=root_certificate.subject,
        public_key=key.public_key(),
        not_before=now,
        days=days,
        path_length=0,
    ).add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
    return builder.sign(root_key, SIGNATURE_HASH())


# --- device certificates ---------------------------------------------------------------------


def load_csr(pem: str, *, expected_common_name: str | None = None) -> x509.CertificateSigningRequest:
    """Parse and check a device CSR: valid self-signature, P-256 key, CN equal to the serial."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError as e:
        raise InvalidCSRError(f"The CSR is not a PEM certificate request: {e}") from e
    if not csr.is_signature_valid:
        raise InvalidCSRError("The CSR signature does not verify; sign it with the key it contains.")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, CURVE):
        raise InvalidCSRError("The CSR key must be ECDSA P-256 (secp256r1).")
    if expected_common_name is not None and common_name(csr.subject) != expected_common_name:
        raise SerialMismatchError(
            f"The CSR subject CN is {common_name(csr.subject)!r}; it must be the gateway serial "
            f"{expected_common_name!r}."
        )
    return csr


def issue_device_certificate(
    *,
    public_key: ec.EllipticCurvePublicKey,
    serial: str,
    issuer_certificate: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    days: int,
    crl_url: str | None = None,
) -> x509.Certificate:
    """A client-authentication certificate for one gateway; only key and serial come from the CSR."""
    not_after = min(now + timedelta(days=days), issuer_certificate.not_valid_after_utc)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, serial),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Backdated a little so a gateway whose clock runs slightly behind accepts it at once.
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, SIGNATURE_HASH())


# --- revocation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevokedEntry:
    serial_number: int
    revoked_at: datetime
    reason: x509.ReasonFlags


def build_crl(
    *,
    issuer_certificate: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    revoked: Iterable[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for entry in revoked:
        revoked_cert = (
            x509.RevokedCertificateBuilder().serial_number(entry.serial_number).revocation_date(entry.revoked_at)
        )
        if entry.reason is not x509.ReasonFlags.unspecified:
            # RFC 5280 5.3.1: reasonCode "unspecified" SHOULD be absent rather than present.
            revoked_cert = revoked_cert.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked_cert.build())
    return builder.sign(issuer_key, SIGNATURE_HASH())


# --- verification ----------------------------------------------------------------------------


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_validity(cert: x509.Certificate, *, now: datetime, label: str = "The certificate") -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateExpiredError(f"{label} is not valid before {cert.not_valid_before_utc.isoformat()}.")
    if now > cert.not_valid_after_utc:
        raise CertificateExpiredError(f"{label} expired at {cert.not_valid_after_utc.isoformat()}.")


def verify_chain(
    leaf: x509.Certificate,
    *,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: datetime,
) -> x509.Certificate:
    """Walk from `leaf` to one of `anchors` through `intermediates`; return the anchor reached.

    Checks signatures, CA flags and validity periods of every certificate on the path. The
    leaf's own validity is checked too, so an expired certificate is refused here.
    """
    check_validity(leaf, now=now)
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        for anchor in anchors:
            if _is_ca(anchor) and _issued_by(current, anchor):
                check_validity(anchor, now=now, label=f"Trust anchor {anchor.subject.rfc4514_string()}")
                return anchor
        parent = next((c for c in intermediates if _is_ca(c) and _issued_by(current, c)), None)
        if parent is None:
            break
        check_validity(parent, now=now, label=f"Intermediate {parent.subject.rfc4514_string()}")
        current = parent
    raise UntrustedIssuerError(
        f"The certificate issued by {leaf.issuer.rfc4514_string()} does not chain to the Gridfleet CA "
        "or an imported trust anchor."
    )


def verify_signature(cert: x509.Certificate, *, data: bytes, signature: bytes) -> None:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise BadSignatureError("Only ECDSA P-256 device certificates are accepted.")
    try:
        key.verify(signature, data, ec.ECDSA(SIGNATURE_HASH()))
    except InvalidSignature as e:
        raise BadSignatureError("The signature does not verify with the certificate's key.") from e
