"""State changes of the PKI: CRL."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from pki.models import (
    AccessToken,
    AuthNonce,
    CertificateAuthority,
    RevocationList,
)

from .authorities import _publish_crl


@transaction.atomic
def publish_crls() -> list[RevocationList]:
    """Re-sign the CRL of every unexpired issuing CA (periodic task: keeps nextUpdate in the future)."""
    now = timezone.now()
    return [
        _publish_crl(authority, now=now)
        for authority in CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING, not_after__gt=now)
    ]


@transaction.atomic
def purge_expired_credentials() -> int:
    """Drop expired bearer tokens and replay nonces (both are useless once expired)."""
    now = timezone.now()
    tokens, _ = AccessToken.objects.filter(expires_at__lt=now).delete()
    nonces, _ = AuthNonce.objects.filter(expires_at__lt=now).delete()
    return tokens + nonces
