"""Issuing, storing and revoking device certificates (shared by enrollment, authentication, renewal)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from fleet.inventory.models import Gateway
from pki import ca
from pki.models import (
    CertificateAuthority,
    DeviceCertificate,
    TrustAnchor,
)

from .authorities import _ca_key, active_issuing_ca


def _store_certificate(
    *,
    gateway: Gateway,
    cert: x509.Certificate,
    issuer: CertificateAuthority | None,
    trust_anchor: TrustAnchor | None = None,
) -> DeviceCertificate:
    lfdi = ca.lfdi(cert)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return DeviceCertificate.objects.create(
        gateway=gateway,
        issuer=issuer,
        trust_anchor=trust_anchor,
        certificate_pem=ca.certificate_pem(cert),
        serial_number=f"{cert.serial_number:x}",
        sha256=ca.certificate_sha256(cert),
        public_key_sha256=ca.public_key_sha256(public_key),
        lfdi=lfdi,
        sfdi=ca.sfdi_from_lfdi(lfdi),
        subject=cert.subject.rfc4514_string()[:500],
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def _crl_url(authority: CertificateAuthority) -> str | None:
    """The CRL distribution point written into certificates: this CA's own, stable CRL URL."""
    public = settings.GRIDFLEET_PKI_PUBLIC_URL.rstrip("/")
    return public + reverse("pki-gw:crl-authority-der", args=[authority.pk]) if public else None


def _issue(*, gateway: Gateway, public_key: ec.EllipticCurvePublicKey) -> DeviceCertificate:
    issuing = active_issuing_ca()
    cert = ca.issue_device_certificate(
        public_key=public_key,
        serial=gateway.serial,
        issuer_certificate=issuing.certificate(),
        issuer_key=_ca_key(issuing),
        now=timezone.now(),
        days=settings.GRIDFLEET_PKI_DEVICE_CERT_DAYS,
        crl_url=_crl_url(issuing),
    )
    return _store_certificate(gateway=gateway, cert=cert, issuer=issuing)


def _active_certificates(gateway: Gateway) -> Any:
    return DeviceCertificate.objects.filter(
        gateway=gateway, status=DeviceCertificate.Status.ACTIVE, not_after__gt=timezone.now()
    )


def _mark_revoked(certificate: DeviceCertificate, *, reason: str, now: datetime) -> None:
    certificate.status = DeviceCertificate.Status.REVOKED
    certificate.revoked_at = now
    certificate.revocation_reason = reason
    # Its bearer tokens stay in place: each use re-checks the certificate and answers
    # `certificate_revoked`, which tells the agent to stop rather than to fetch a new token.
    certificate.save(update_fields=["status", "revoked_at", "revocation_reason"])
