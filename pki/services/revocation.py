"""State changes of the PKI: renewal and revocation."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from django.db import transaction
from django.utils import timezone

from fleet.accounts.authorization import Actor, authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record
from fleet.core.errors import DomainError
from pki import ca
from pki.errors import (
    ExternalCertificateError,
    InvalidRequestError,
    KeyMismatchError,
)
from pki.models import (
    DeviceCertificate,
    RevocationReason,
)

from ._common import _audited_refusal
from .authorities import _publish_crl
from .certificates import _issue, _mark_revoked


def _renew(*, certificate: DeviceCertificate, csr_pem: Any, ip: str | None) -> DeviceCertificate:
    if not isinstance(csr_pem, str) or not csr_pem:
        raise InvalidRequestError("'csr' must be the PEM certificate request.")
    if certificate.is_external:
        raise ExternalCertificateError("Certificates from an external PKI are renewed by that PKI.")
    csr = ca.load_csr(csr_pem, expected_common_name=certificate.gateway.serial)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    if ca.public_key_sha256(public_key) != certificate.public_key_sha256:
        raise KeyMismatchError("Renewal keeps the key: sign the CSR with the current key (a new key is re-enrollment).")
    renewed = _issue(gateway=certificate.gateway, public_key=public_key)
    record(
        action="pki.certificate.renew",
        target=renewed,
        gateway=certificate.gateway,
        ip=ip,
        before={"serial_number": certificate.serial_number, "not_after": certificate.not_after},
        after={"serial_number": renewed.serial_number, "not_after": renewed.not_after, "lfdi": renewed.lfdi},
    )
    return renewed


def renew_certificate(*, certificate: DeviceCertificate, csr_pem: Any, ip: str | None = None) -> DeviceCertificate:
    """A new certificate for the same key; the old one stays valid until it expires or is revoked."""
    return _audited_refusal(
        "pki.renew.refused",
        ip=ip,
        context={"gateway": certificate.gateway},
        call=lambda: _renew(certificate=certificate, csr_pem=csr_pem, ip=ip),
    )


def revoke_certificate(
    *, certificate: DeviceCertificate, reason: str, user: Actor, ip: str | None = None
) -> DeviceCertificate:
    """Refuse the certificate (and its bearer tokens) from the next request on; republish the CRL."""
    authorize(user, Capability.MANAGE_PKI, certificate.gateway.organization_id)
    if reason not in RevocationReason.values:
        raise DomainError(
            f"Unknown reason {reason!r}; use one of {', '.join(RevocationReason.values)}.",
            code="invalid_reason",
            field="reason",
        )
    with transaction.atomic():
        certificate = DeviceCertificate.objects.select_for_update().select_related("gateway").get(pk=certificate.pk)
        if certificate.status == DeviceCertificate.Status.REVOKED:
            raise DomainError("This certificate is already revoked.", code="already_revoked")
        now = timezone.now()
        _mark_revoked(certificate, reason=reason, now=now)
        record(
            action="pki.certificate.revoke",
            target=certificate,
            user=user,
            ip=ip,
            before={"status": DeviceCertificate.Status.ACTIVE},
            after={"status": certificate.status, "reason": reason, "serial_number": certificate.serial_number},
        )
        if certificate.issuer is not None:
            _publish_crl(certificate.issuer, now=now)
    return certificate
