"""Reads of the PKI. PKI objects are visible to admins (MANAGE_PKI) of the owning organization."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_where
from pki.errors import CANotInitializedError
from pki.models import (
    CertificateAuthority,
    DeviceCertificate,
    EnrollmentRequest,
    EnrollmentToken,
    RevocationList,
    TrustAnchor,
)

_LFDI = re.compile(r"^[0-9a-f]{40}$")
_SFDI = re.compile(r"^[0-9]{1,12}$")


def normalize_fingerprint(value: str) -> str:
    """LFDI/SFDI as people paste them: any case, grouped with spaces, dashes or colons."""
    return re.sub(r"[\s:-]", "", value).lower()


def gateway_ids_by_fingerprint(value: str) -> QuerySet[DeviceCertificate, Any]:
    """Ids of gateways with a certificate whose LFDI or SFDI is `value` (for gateway search).

    Not tenancy-filtered: callers apply it to a queryset already scoped to the user.
    """
    normalized = normalize_fingerprint(value)
    if _LFDI.match(normalized):
        matches = DeviceCertificate.objects.filter(lfdi=normalized)
    elif _SFDI.match(normalized):
        matches = DeviceCertificate.objects.filter(sfdi=normalized.zfill(12))
    else:
        matches = DeviceCertificate.objects.none()
    return matches.values("gateway_id")


def pki_organizations(user: Any) -> Any:
    return organizations_where(user, Capability.MANAGE_PKI)


def can_manage_pki(user: Any) -> bool:
    return bool(pki_organizations(user).exists())


def certificates_visible_to(user: Any) -> QuerySet[DeviceCertificate]:
    return DeviceCertificate.objects.filter(gateway__organization__in=pki_organizations(user)).select_related(
        "gateway", "gateway__organization", "issuer", "trust_anchor"
    )


def enrollment_tokens_visible_to(user: Any) -> QuerySet[EnrollmentToken]:
    return EnrollmentToken.objects.filter(organization__in=pki_organizations(user)).select_related(
        "organization", "created_by"
    )


def enrollment_requests_visible_to(user: Any) -> QuerySet[EnrollmentRequest]:
    return EnrollmentRequest.objects.filter(gateway__organization__in=pki_organizations(user)).select_related(
        "gateway", "gateway__organization", "decided_by"
    )


def trust_anchors_visible_to(user: Any) -> QuerySet[TrustAnchor]:
    """Anchors of the user's organizations, plus deployment-wide ones (read-only unless superuser)."""
    if not can_manage_pki(user):
        return TrustAnchor.objects.none()
    return TrustAnchor.objects.filter(
        Q(organization__in=pki_organizations(user)) | Q(organization__isnull=True)
    ).select_related("organization")


def authorities() -> QuerySet[CertificateAuthority]:
    return CertificateAuthority.objects.select_related("parent").order_by("kind", "-created")


def ca_chain_pem() -> str:
    """The active issuing CA followed by the root: what a gateway or verifier needs."""
    issuing = (
        CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING, is_active=True)
        .select_related("parent")
        .first()
    )
    if issuing is None or issuing.parent is None:
        raise CANotInitializedError("The server has no certificate authority yet; run `manage.py pki_init`.")
    return issuing.certificate_pem + issuing.parent.certificate_pem


def issuer_chain_pem(authority: CertificateAuthority) -> str:
    parent = authority.parent
    return authority.certificate_pem + (parent.certificate_pem if parent else "")


def _published_crls() -> QuerySet[RevocationList]:
    """CRLs of issuing CAs that can still vouch for a certificate (not expired), newest CA first."""
    return (
        RevocationList.objects.filter(
            authority__kind=CertificateAuthority.Kind.ISSUING, authority__not_after__gt=timezone.now()
        )
        .select_related("authority")
        .order_by("-authority__is_active", "-authority__created")
    )


def current_crls() -> list[RevocationList]:
    """Every published CRL, the active issuing CA's first (a TLS terminator loads them all)."""
    crls = list(_published_crls())
    if not crls:
        raise CANotInitializedError("The server has no certificate authority yet; run `manage.py pki_init`.")
    return crls


def current_crl() -> RevocationList:
    """The active issuing CA's CRL."""
    return current_crls()[0]


def crl_of(authority_id: int) -> RevocationList | None:
    return _published_crls().filter(authority_id=authority_id).first()


def ca_bundle_pem() -> str:
    """Root plus every unexpired issuing CA: what a TLS terminator verifying client certs needs."""
    authorities = CertificateAuthority.objects.filter(not_after__gt=timezone.now()).order_by("kind", "-created")
    return "".join(a.certificate_pem for a in authorities)
