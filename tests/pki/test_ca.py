"""The pure X.509 layer: IEEE 2030.5 identifiers, CA hierarchy, device certificates, CRLs."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki import ca
from pki.errors import (
    BadSignatureError,
    CertificateExpiredError,
    InvalidCSRError,
    SerialMismatchError,
    UntrustedIssuerError,
)
from tests.conftest import NOON_PACIFIC

NOW = NOON_PACIFIC.replace(hour=12, minute=0)


def make_hierarchy(
    name: str = "Test",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey]:
    root_key, issuing_key = ca.generate_key(), ca.generate_key()
    root = ca.create_root_ca(key=root_key, common_name=f"{name} Root", organization=name, now=NOW, days=3650)
    issuing = ca.create_issuing_ca(
        key=issuing_key,
        common_name=f"{name} Issuing",
        organization=name,
        root_certificate=root,
        root_key=root_key,
        now=NOW,
        days=1825,
    )
    return root, root_key, issuing, issuing_key


def make_csr(key: ec.EllipticCurvePrivateKey, cn: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def issue(
    issuing: x509.Certificate, issuing_key: ec.EllipticCurvePrivateKey, serial: str = "GW-1", days: int = 365
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ca.generate_key()
    cert = ca.issue_device_certificate(
        public_key=key.public_key(),
        serial=serial,
        issuer_certificate=issuing,
        issuer_key=issuing_key,
        now=NOW,
        days=days,
        crl_url="http://gridfleet.test/gw/v1/pki/crl.der",
    )
    return cert, key


@pytest.mark.parametrize(
    ("lfdi", "sfdi"),
    [
        ("3e4f45ab31edfe5b67e343e5e4562e31984e23e5", "167261211391"),
        ("854d10a201ca99e5e90d3c3e1f9bc1c3bd075f3b", "357827241281"),
    ],
)
def test_sfdi_matches_the_ieee_2030_5_vectors(lfdi: str, sfdi: str) -> None:
    assert ca.sfdi_from_lfdi(lfdi) == sfdi


def test_check_digit_is_a_plain_digit_sum_not_luhn() -> None:
    # Luhn would give 2 for 16726121139; IEEE 2030.5 makes the plain digit sum a multiple of 10.
    assert ca.check_digit("16726121139") == "1"
    assert ca.check_digit("11111") == "5"


def test_lfdi_is_the_first_160_bits_of_the_certificate_der_sha256() -> None:
    _, _, issuing, issuing_key = make_hierarchy()
    cert, _ = issue(issuing, issuing_key)
    expected = cert.fingerprint(hashes.SHA256()).hex()[:40]
    assert ca.lfdi(cert) == expected
    assert len(ca.sfdi_from_lfdi(expected)) == 12


def test_device_certificate_is_for_client_auth_with_the_serial_as_subject() -> None:
    _, _, issuing, issuing_key = make_hierarchy()
    cert, key = issue(issuing, issuing_key, serial="GW-42")
    assert ca.common_name(cert.subject) == "GW-42"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ca.public_key_sha256(cert.public_key()) == ca.public_key_sha256(key.public_key())


def test_device_certificate_never_outlives_the_issuing_ca() -> None:
    _, _, issuing, issuing_key = make_hierarchy()
    cert, _ = issue(issuing, issuing_key, days=100_000)
    assert cert.not_valid_after_utc == issuing.not_valid_after_utc


def test_openssl_verifies_the_issued_chain(tmp_path: Path) -> None:
    root, _, issuing, issuing_key = make_hierarchy()
    cert, _ = issue(issuing, issuing_key)
    (tmp_path / "root.pem").write_text(ca.certificate_pem(root))
    (tmp_path / "issuing.pem").write_text(ca.certificate_pem(issuing))
    (tmp_path / "leaf.pem").write_text(ca.certificate_pem(cert))
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-purpose",
            "sslclient",
            "-attime",
            str(int((NOW + timedelta(days=1)).timestamp())),
            "leaf.pem",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leaf.pem: OK" in result.stdout


def test_openssl_parses_the_crl_with_reason_codes(tmp_path: Path) -> None:
    _, _, issuing, issuing_key = make_hierarchy()
    cert, _ = issue(issuing, issuing_key)
    crl = ca.build_crl(
        issuer_certificate=issuing,
        issuer_key=issuing_key,
        revoked=[ca.RevokedEntry(cert.serial_number, NOW, x509.ReasonFlags.key_compromise)],
        number=7,
        this_update=NOW,
        next_update=NOW + timedelta(days=1),
    )
    (tmp_path / "crl.der").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    (tmp_path / "issuing.pem").write_text(ca.certificate_pem(issuing))
    result = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text", "-CAfile", "issuing.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr + result.stdout
    assert f"{cert.serial_number:X}" in result.stdout.replace(":", "").upper()
    assert "Key Compromise" in result.stdout
    assert "X509v3 CRL Number" in result.stdout


def test_chain_verification_reaches_the_anchor_and_refuses_another_ca() -> None:
    root, _, issuing, issuing_key = make_hierarchy("Ours")
    cert, _ = issue(issuing, issuing_key)
    assert ca.verify_chain(cert, intermediates=[], anchors=[issuing, root], now=NOW) == issuing
    assert ca.verify_chain(cert, intermediates=[issuing], anchors=[root], now=NOW) == root

    _, _, other_issuing, other_key = make_hierarchy("Ours")  # same names, other keys
    foreign, _ = issue(other_issuing, other_key)
    with pytest.raises(UntrustedIssuerError):
        ca.verify_chain(foreign, intermediates=[other_issuing], anchors=[issuing, root], now=NOW)


def test_chain_verification_refuses_an_expired_leaf() -> None:
    root, _, issuing, issuing_key = make_hierarchy()
    cert, _ = issue(issuing, issuing_key, days=1)
    with pytest.raises(CertificateExpiredError):
        ca.verify_chain(cert, intermediates=[], anchors=[issuing, root], now=NOW + timedelta(days=2))


def test_a_leaf_cannot_act_as_an_intermediate() -> None:
    root, _, issuing, issuing_key = make_hierarchy()
    device, device_key = issue(issuing, issuing_key)
    forged = ca.issue_device_certificate(
        public_key=ca.generate_key().public_key(),
        serial="GW-EVIL",
        issuer_certificate=device,
        issuer_key=device_key,
        now=NOW,
        days=10,
    )
    with pytest.raises(UntrustedIssuerError):
        ca.verify_chain(forged, intermediates=[device], anchors=[issuing, root], now=NOW)


def test_csr_checks() -> None:
    key = ca.generate_key()
    assert ca.common_name(ca.load_csr(make_csr(key, "GW-1"), expected_common_name="GW-1").subject) == "GW-1"
    with pytest.raises(SerialMismatchError):
        ca.load_csr(make_csr(key, "GW-2"), expected_common_name="GW-1")
    with pytest.raises(InvalidCSRError):
        ca.load_csr("not a csr")
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(InvalidCSRError, match="P-256"):
        ca.load_csr(make_csr(p384, "GW-1"))


def test_ca_key_round_trips_only_with_the_kek() -> None:
    key = ca.generate_key()
    pem = ca.encrypt_private_key(key, b"kek-one")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    assert ca.public_key_sha256(ca.decrypt_private_key(pem, b"kek-one").public_key()) == ca.public_key_sha256(
        key.public_key()
    )
    with pytest.raises(ValueError):
        ca.decrypt_private_key(pem, b"kek-two")


def test_signature_verification() -> None:
    _, _, issuing, issuing_key = make_hierarchy()
    cert, key = issue(issuing, issuing_key)
    signature = key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    ca.verify_signature(cert, data=b"payload", signature=signature)
    with pytest.raises(BadSignatureError):
        ca.verify_signature(cert, data=b"payload!", signature=signature)
