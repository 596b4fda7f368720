"""State changes of the PKI: enrollment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.accounts.authorization import Actor, authorize, person
from fleet.accounts.roles import Capability
from fleet.audit.services import record
from fleet.core.errors import DomainError
from fleet.inventory.models import Gateway
from pki import ca
from pki.errors import (
    AlreadyEnrolledError,
    EnrollmentRejectedError,
    EnrollmentTokenExpiredError,
    EnrollmentTokenUsedError,
    GatewayDecommissionedError,
    InvalidEnrollmentTokenError,
    TokenSerialMismatchError,
    UnknownEnrollmentRequestError,
)
from pki.models import (
    DeviceCertificate,
    EnrollmentRequest,
    EnrollmentToken,
    RevocationReason,
)

from ._common import _audited_refusal, _sha256
from .authorities import _publish_crl, active_issuing_ca
from .certificates import _active_certificates, _issue, _mark_revoked


@dataclass(frozen=True)
class Enrollment:
    """The outcome of an enrollment: a certificate now, or a request awaiting acceptance."""

    certificate: DeviceCertificate | None = None
    request: EnrollmentRequest | None = None


def _complete_enrollment(
    *, gateway: Gateway, public_key: ec.EllipticCurvePublicKey, reenroll: bool, user: Any, ip: str | None
) -> DeviceCertificate:
    now = timezone.now()
    superseded = list(_active_certificates(gateway)) if reenroll else []
    certificate = _issue(gateway=gateway, public_key=public_key)
    for old in superseded:
        _mark_revoked(old, reason=RevocationReason.SUPERSEDED, now=now)
    if gateway.status == Gateway.Status.REGISTERED:
        gateway.status = Gateway.Status.ACTIVE
        gateway.save(update_fields=["status", "updated"])
    record(
        action="pki.gateway.reenrolled" if reenroll else "pki.gateway.enrolled",
        target=certificate,
        gateway=gateway,
        user=user,
        ip=ip,
        after={
            "serial_number": certificate.serial_number,
            "lfdi": certificate.lfdi,
            "sfdi": certificate.sfdi,
            "not_after": certificate.not_after,
        },
        detail={"superseded": [c.serial_number for c in superseded]} if superseded else None,
    )
    if superseded:
        _publish_crl(active_issuing_ca(), now=now)
    return certificate


def _enroll(*, serial: str, token: str, csr_pem: str, hardware_model: str, ip: str | None) -> Enrollment:
    row = EnrollmentToken.objects.select_for_update().filter(token_sha256=_sha256(token)).first()
    if row is None:
        raise InvalidEnrollmentTokenError("Unknown enrollment token; check it was copied whole.")
    if row.used_at is not None:
        raise EnrollmentTokenUsedError(
            f"This enrollment token was already used at {row.used_at.isoformat()}; ask an admin for a new one."
        )
    if timezone.now() > row.expires_at:
        raise EnrollmentTokenExpiredError(
            f"This enrollment token expired at {row.expires_at.isoformat()}; ask an admin for a new one."
        )
    if row.serial != serial:
        raise TokenSerialMismatchError(f"This enrollment token is for serial {row.serial}, not {serial}.")
    csr = ca.load_csr(csr_pem, expected_common_name=serial)
    active_issuing_ca()  # refuse before consuming the token if there is nothing to issue from
    gateway = Gateway.objects.filter(serial=serial).first()
    if gateway is not None and gateway.organization_id != row.organization_id:
        raise TokenSerialMismatchError(f"Serial {serial} now belongs to another organization; ask an admin.")
    if gateway is not None and gateway.status == Gateway.Status.DECOMMISSIONED:
        raise GatewayDecommissionedError(f"Gateway {serial} is decommissioned.")
    if gateway is not None and not row.reenroll and _active_certificates(gateway).exists():
        raise AlreadyEnrolledError(
            f"Gateway {serial} already has an active certificate; re-enrolling needs a token created for re-enrollment."
        )
    if gateway is None:
        gateway = Gateway.objects.create(
            organization=row.organization, serial=serial, hardware_model=hardware_model[:64] or "unknown"
        )
        record(action="gateway.create", target=gateway, gateway=gateway, ip=ip, detail={"via": "enrollment"})
    row.used_at = timezone.now()
    row.save(update_fields=["used_at"])
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    if settings.GRIDFLEET_PKI_REQUIRE_ACCEPTANCE:
        request = EnrollmentRequest.objects.create(gateway=gateway, csr_pem=csr_pem, reenroll=row.reenroll)
        record(
            action="pki.enrollment.requested",
            target=request,
            gateway=gateway,
            ip=ip,
            detail={"request_id": str(request.public_id), "reenroll": row.reenroll},
        )
        return Enrollment(request=request)
    return Enrollment(
        certificate=_complete_enrollment(
            gateway=gateway, public_key=public_key, reenroll=row.reenroll, user=None, ip=ip
        )
    )


def enroll(*, serial: str, token: str, csr_pem: str, hardware_model: str = "", ip: str | None = None) -> Enrollment:
    """Check the one-time token and the CSR, then issue a certificate (or queue for acceptance)."""
    return _audited_refusal(
        "pki.enroll.refused",
        ip=ip,
        context={"serial": serial},
        call=lambda: _enroll(serial=serial, token=token, csr_pem=csr_pem, hardware_model=hardware_model, ip=ip),
    )


def enrollment_status(*, request_id: str) -> EnrollmentRequest:
    request = EnrollmentRequest.objects.filter(public_id=request_id).select_related("certificate").first()
    if request is None:
        raise UnknownEnrollmentRequestError("No such enrollment request.")
    if request.status == EnrollmentRequest.Status.REJECTED:
        raise EnrollmentRejectedError("An admin rejected this enrollment; ask for a new enrollment token.")
    return request


def _pending(request: EnrollmentRequest) -> EnrollmentRequest:
    locked = EnrollmentRequest.objects.select_for_update().select_related("gateway").get(pk=request.pk)
    if locked.status != EnrollmentRequest.Status.PENDING:
        raise DomainError(f"This request is already {locked.status}.", code="not_pending")
    return locked


@transaction.atomic
def accept_enrollment_request(*, request: EnrollmentRequest, user: Actor, ip: str | None = None) -> DeviceCertificate:
    authorize(user, Capability.MANAGE_PKI, request.gateway.organization_id)
    request = _pending(request)
    csr = ca.load_csr(request.csr_pem, expected_common_name=request.gateway.serial)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    certificate = _complete_enrollment(
        gateway=request.gateway, public_key=public_key, reenroll=request.reenroll, user=user, ip=ip
    )
    request.status = EnrollmentRequest.Status.ACCEPTED
    request.certificate = certificate
    request.decided_by = person(user)
    request.decided_at = timezone.now()
    request.save()
    record(action="pki.enrollment.accept", target=request, user=user, ip=ip)
    return certificate


@transaction.atomic
def reject_enrollment_request(*, request: EnrollmentRequest, user: Actor, ip: str | None = None) -> None:
    authorize(user, Capability.MANAGE_PKI, request.gateway.organization_id)
    request = _pending(request)
    request.status = EnrollmentRequest.Status.REJECTED
    request.decided_by = person(user)
    request.decided_at = timezone.now()
    request.save()
    record(action="pki.enrollment.reject", target=request, user=user, ip=ip)
