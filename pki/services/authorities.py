"""State changes of the PKI: certificate authorities."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from fleet.audit.services import record
from fleet.core.errors import DomainError
from pki import ca, conf
from pki.errors import (
    CANotInitializedError,
)
from pki.models import (
    CertificateAuthority,
    DeviceCertificate,
    RevocationList,
    RevocationReason,
)


def _store_authority(
    *,
    kind: str,
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    parent: CertificateAuthority | None,
) -> CertificateAuthority:
    return CertificateAuthority.objects.create(
        kind=kind,
        name=name,
        parent=parent,
        certificate_pem=ca.certificate_pem(cert),
        encrypted_key_pem=ca.encrypt_private_key(key, conf.kek()),
        serial_number=f"{cert.serial_number:x}",
        sha256=ca.certificate_sha256(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


@transaction.atomic
def initialize_ca(*, name: str, rotate_issuing: bool = False) -> CertificateAuthority:
    """Create the root and issuing CA, or (rotate_issuing) a new issuing CA under the existing root.

    After a rotation earlier certificates stay valid: every issuing CA remains a trust anchor
    until it expires, only the newest one issues.
    """
    now = timezone.now()
    root_authority = CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ROOT).first()
    if root_authority is not None and not rotate_issuing:
        raise DomainError("The CA already exists; use rotation to create a new issuing CA.", code="ca_exists")
    if root_authority is None:
        root_key = ca.generate_key()
        root_cert = ca.create_root_ca(
            key=root_key,
            common_name=f"{name} Root CA",
            organization=name,
            now=now,
            days=settings.GRIDFLEET_PKI_ROOT_CA_DAYS,
        )
        root_authority = _store_authority(
            kind=CertificateAuthority.Kind.ROOT, name=f"{name} Root CA", cert=root_cert, key=root_key, parent=None
        )
    else:
        root_cert = root_authority.certificate()
        root_key = _ca_key(root_authority)
    CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING).update(is_active=False)
    issuing_key = ca.generate_key()
    generation = CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING).count() + 1
    issuing_name = f"{name} Issuing CA {generation}"
    issuing_cert = ca.create_issuing_ca(
        key=issuing_key,
        common_name=issuing_name,
        organization=name,
        root_certificate=root_cert,
        root_key=root_key,
        now=now,
        days=settings.GRIDFLEET_PKI_ISSUING_CA_DAYS,
    )
    issuing = _store_authority(
        kind=CertificateAuthority.Kind.ISSUING,
        name=issuing_name,
        cert=issuing_cert,
        key=issuing_key,
        parent=root_authority,
    )
    record(
        action="pki.ca.rotate" if rotate_issuing else "pki.ca.create",
        target=issuing,
        detail={"root_sha256": root_authority.sha256, "issuing_sha256": issuing.sha256},
    )
    _publish_crl(issuing, now=now)
    return issuing


@transaction.atomic
def rotate_kek(*, old_kek: bytes) -> int:
    """Re-encrypt every CA key from `old_kek` to the current GRIDFLEET_PKI_KEK; all or nothing."""
    new_kek = conf.kek()
    authorities = list(CertificateAuthority.objects.select_for_update())
    for authority in authorities:
        try:
            key = ca.decrypt_private_key(bytes(authority.encrypted_key_pem), old_kek)
        except ValueError as e:
            raise DomainError(f"The old KEK does not decrypt the key of {authority.name}.", code="wrong_kek") from e
        authority.encrypted_key_pem = ca.encrypt_private_key(key, new_kek)
        authority.save(update_fields=["encrypted_key_pem"])
    record(action="pki.kek.rotate", detail={"authorities": [a.name for a in authorities]})
    return len(authorities)


def active_issuing_ca() -> CertificateAuthority:
    issuing = (
        CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING, is_active=True)
        .select_related("parent")
        .first()
    )
    if issuing is None:
        raise CANotInitializedError("The server has no certificate authority yet; run `manage.py pki_init`.")
    return issuing


def _ca_key(authority: CertificateAuthority) -> ec.EllipticCurvePrivateKey:
    try:
        return ca.decrypt_private_key(bytes(authority.encrypted_key_pem), conf.kek())
    except ValueError as e:
        # A server misconfiguration, not a client error: say exactly what to fix.
        raise ImproperlyConfigured(
            f"GRIDFLEET_PKI_KEK does not decrypt the key of {authority.name}; was the KEK changed without "
            "`manage.py pki_rotate_kek`?"
        ) from e


def _publish_crl(authority: CertificateAuthority, *, now: datetime) -> RevocationList:
    authority = CertificateAuthority.objects.select_for_update().get(pk=authority.pk)
    authority.crl_number += 1
    authority.save(update_fields=["crl_number"])
    next_update = now + timedelta(hours=settings.GRIDFLEET_PKI_CRL_VALIDITY_HOURS)
    revoked = DeviceCertificate.objects.filter(
        issuer=authority, status=DeviceCertificate.Status.REVOKED, not_after__gt=now
    ).order_by("revoked_at")
    crl = ca.build_crl(
        issuer_certificate=authority.certificate(),
        issuer_key=_ca_key(authority),
        revoked=[
            ca.RevokedEntry(
                int(c.serial_number, 16), c.revoked_at or now, RevocationReason(c.revocation_reason).crl_reason
            )
            for c in revoked
        ],
        number=authority.crl_number,
        this_update=now,
        next_update=next_update,
    )
    published, _ = RevocationList.objects.update_or_create(
        authority=authority,
        defaults={
            "number": authority.crl_number,
            "der": crl.public_bytes(serialization.Encoding.DER),
            "this_update": now,
            "next_update": next_update,
        },
    )
    return published
