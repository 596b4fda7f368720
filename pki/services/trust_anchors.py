"""State changes of the PKI: trust anchors."""

from __future__ import annotations

from cryptography import x509
from django.db import transaction
from django.utils import timezone

from fleet.accounts.authorization import Actor, authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record
from fleet.core.errors import DomainError
from fleet.inventory.models import Organization
from pki import ca
from pki.errors import (
    IdentityError,
)
from pki.models import (
    TrustAnchor,
)


@transaction.atomic
def import_trust_anchor(
    *, organization: Organization | None, name: str, certificate_pem: str, user: Actor, ip: str | None = None
) -> TrustAnchor:
    authorize(user, Capability.MANAGE_PKI, organization)
    try:
        cert = ca.load_certificate(certificate_pem)
    except IdentityError as e:
        raise DomainError(e.message, code="invalid_certificate", field="certificate_pem") from e
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise DomainError(
            "A trust anchor must be a CA certificate (basicConstraints CA:TRUE).",
            code="not_a_ca",
            field="certificate_pem",
        )
    if cert.not_valid_after_utc < timezone.now():
        raise DomainError("This certificate has expired.", code="expired", field="certificate_pem")
    sha256 = ca.certificate_sha256(cert)
    if TrustAnchor.objects.filter(organization=organization, sha256=sha256).exists():
        raise DomainError("This trust anchor is already imported.", code="duplicate", field="certificate_pem")
    anchor = TrustAnchor.objects.create(
        organization=organization,
        name=name or cert.subject.rfc4514_string()[:200],
        certificate_pem=ca.certificate_pem(cert),
        subject=cert.subject.rfc4514_string()[:500],
        sha256=sha256,
        not_after=cert.not_valid_after_utc,
    )
    record(
        action="pki.trust_anchor.import",
        target=anchor,
        user=user,
        ip=ip,
        organization=organization,
        after={"name": anchor.name, "subject": anchor.subject, "sha256": sha256},
    )
    return anchor


@transaction.atomic
def remove_trust_anchor(*, anchor: TrustAnchor, user: Actor, ip: str | None = None) -> None:
    authorize(user, Capability.MANAGE_PKI, anchor.organization_id)
    record(
        action="pki.trust_anchor.remove",
        target=anchor,
        user=user,
        ip=ip,
        organization=anchor.organization,
        before={"name": anchor.name, "subject": anchor.subject, "sha256": anchor.sha256},
    )
    anchor.delete()
