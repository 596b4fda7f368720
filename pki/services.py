"""State changes of the PKI: CAs, enrollment, gateway authentication, renewal, revocation, CRLs.

Each public function is one transaction and writes its audit entry. Refusals of the gateway
protocol (pki.errors.IdentityError) are audited too, after the refused transaction rolled back,
so an attacker probing tokens or replaying requests leaves a trace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from fleet.api import DomainError
from fleet.audit.services import record
from fleet.inventory.models import Gateway, Organization, serial_validator
from pki import ca, conf
from pki.errors import (
    AccessTokenExpired,
    AlreadyEnrolled,
    CANotInitialized,
    CertificateExpired,
    CertificateRevoked,
    EnrollmentRejected,
    EnrollmentTokenExpired,
    EnrollmentTokenUsed,
    ExternalCertificate,
    GatewayDecommissioned,
    IdentityError,
    InvalidAccessToken,
    InvalidEnrollmentToken,
    InvalidRequest,
    KeyMismatch,
    ReplayedRequest,
    SerialMismatch,
    StaleRequest,
    TokenSerialMismatch,
    UnknownCertificate,
    UnknownEnrollmentRequest,
    UnknownGateway,
)
from pki.models import (
    AccessToken,
    AuthNonce,
    CertificateAuthority,
    DeviceCertificate,
    EnrollmentRequest,
    EnrollmentToken,
    RevocationList,
    RevocationReason,
    TrustAnchor,
)

AUTH_REQUEST_TYPE = "gridfleet-gw-auth/v1"
ENROLLMENT_TOKEN_PREFIX = "gfe_"  # noqa: S105 (a prefix, not a secret)
ACCESS_TOKEN_PREFIX = "gfa_"  # noqa: S105
# Largest batch of enrollment tokens in one request (a factory run; bigger runs split the CSV).
MAX_BATCH_SIZE = 10_000
AUDIT_VALUE_LIMIT = 300

T = TypeVar("T")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _audited_refusal(action: str, *, ip: str | None, context: dict[str, Any], call: Callable[[], T]) -> T:
    """Run `call` in a transaction; on a protocol refusal, audit it outside the rolled-back work."""
    try:
        with transaction.atomic():
            return call()
    except IdentityError as e:
        gateway = context.pop("gateway", None)
        if gateway is None and context.get("serial"):
            gateway = Gateway.objects.filter(serial=context["serial"]).select_related("organization").first()
        # Claimed values are attacker-controlled: keep the audit entry small whatever was sent.
        claimed = {k: v[:AUDIT_VALUE_LIMIT] if isinstance(v, str) else v for k, v in context.items()}
        record(
            action=action,
            gateway=gateway,
            ip=ip,
            detail={"error": e.code, "message": e.message[:AUDIT_VALUE_LIMIT], **claimed},
        )
        raise


# --- certificate authorities -----------------------------------------------------------------


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
            days=conf.get("GRIDFLEET_PKI_ROOT_CA_DAYS"),
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
        days=conf.get("GRIDFLEET_PKI_ISSUING_CA_DAYS"),
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
        raise CANotInitialized("The server has no certificate authority yet; run `manage.py pki_init`.")
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


# --- trust anchors ---------------------------------------------------------------------------


@transaction.atomic
def import_trust_anchor(
    *, organization: Organization | None, name: str, certificate_pem: str, user: Any, ip: str | None = None
) -> TrustAnchor:
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
def remove_trust_anchor(*, anchor: TrustAnchor, user: Any, ip: str | None = None) -> None:
    record(
        action="pki.trust_anchor.remove",
        target=anchor,
        user=user,
        ip=ip,
        organization=anchor.organization,
        before={"name": anchor.name, "subject": anchor.subject, "sha256": anchor.sha256},
    )
    anchor.delete()


# --- enrollment tokens -----------------------------------------------------------------------


def _check_serials(serials: list[str], organization: Organization) -> None:
    """Serial syntax, then one query for serials that belong to another organization."""
    for serial in serials:
        try:
            serial_validator(serial)
        except ValidationError as e:
            raise DomainError(f"{serial!r}: {e.messages[0]}", code="invalid_serial", field="serial") from e
    taken = sorted(
        Gateway.objects.filter(serial__in=serials).exclude(organization=organization).values_list("serial", flat=True)
    )
    if taken:
        raise DomainError(
            f"Serial {', '.join(taken[:10])} belongs to a gateway of another organization.",
            code="serial_taken",
            field="serial",
        )


def _new_token(
    *, organization: Organization, serial: str, user: Any, reenroll: bool, expires_at: datetime, batch: str
) -> tuple[EnrollmentToken, str]:
    """An unsaved token row and its secret (callers save one or bulk-create many)."""
    secret = ENROLLMENT_TOKEN_PREFIX + secrets.token_urlsafe(24)
    token = EnrollmentToken(
        organization=organization,
        serial=serial,
        token_sha256=_sha256(secret),
        reenroll=reenroll,
        expires_at=expires_at,
        batch=batch,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    return token, secret


def _token_expiry(valid_hours: int | None) -> datetime:
    return timezone.now() + timedelta(hours=valid_hours or conf.get("GRIDFLEET_PKI_ENROLLMENT_TOKEN_HOURS"))


@transaction.atomic
def create_enrollment_token(
    *,
    organization: Organization,
    serial: str,
    user: Any,
    reenroll: bool = False,
    valid_hours: int | None = None,
    ip: str | None = None,
) -> tuple[EnrollmentToken, str]:
    """A one-time token for one serial; returns the row and the secret (shown once, stored hashed)."""
    serial = serial.strip()
    _check_serials([serial], organization)
    token, secret = _new_token(
        organization=organization,
        serial=serial,
        user=user,
        reenroll=reenroll,
        expires_at=_token_expiry(valid_hours),
        batch="",
    )
    token.save()
    record(
        action="pki.enrollment_token.create",
        target=token,
        user=user,
        ip=ip,
        after={"serial": serial, "reenroll": reenroll, "expires_at": token.expires_at},
    )
    return token, secret


@transaction.atomic
def create_enrollment_token_batch(
    *,
    organization: Organization,
    serials: Iterable[str],
    user: Any,
    batch: str,
    valid_hours: int | None = None,
    ip: str | None = None,
) -> list[tuple[EnrollmentToken, str]]:
    """Tokens for a factory run; all or nothing, the first bad serial is named."""
    cleaned = [s.strip() for s in serials if s.strip()]
    if not cleaned:
        raise DomainError("Give at least one serial.", code="empty_batch", field="serials")
    if len(cleaned) > MAX_BATCH_SIZE:
        raise DomainError(f"At most {MAX_BATCH_SIZE} serials per batch.", code="batch_too_large", field="serials")
    duplicates = sorted(serial for serial, n in Counter(cleaned).items() if n > 1)
    if duplicates:
        raise DomainError(f"Duplicate serials: {', '.join(duplicates[:10])}.", code="duplicate", field="serials")
    _check_serials(cleaned, organization)
    expires_at = _token_expiry(valid_hours)
    tokens = [
        _new_token(
            organization=organization,
            serial=serial,
            user=user,
            reenroll=False,
            expires_at=expires_at,
            batch=batch,
        )
        for serial in cleaned
    ]
    EnrollmentToken.objects.bulk_create([token for token, _ in tokens], batch_size=1000)
    record(
        action="pki.enrollment_token.create_batch",
        user=user,
        ip=ip,
        organization=organization,
        after={"batch": batch, "count": len(tokens), "serials": cleaned, "expires_at": expires_at},
    )
    return tokens


@transaction.atomic
def withdraw_enrollment_token(*, token: EnrollmentToken, user: Any, ip: str | None = None) -> None:
    record(
        action="pki.enrollment_token.withdraw",
        target=token,
        user=user,
        ip=ip,
        before={"serial": token.serial, "expires_at": token.expires_at, "used_at": token.used_at},
    )
    token.delete()


# --- enrollment ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrollment:
    """The outcome of an enrollment: a certificate now, or a request awaiting acceptance."""

    certificate: DeviceCertificate | None = None
    request: EnrollmentRequest | None = None


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
    public = conf.get("GRIDFLEET_PKI_PUBLIC_URL").rstrip("/")
    return public + reverse("pki-gw:crl-authority-der", args=[authority.pk]) if public else None


def _issue(*, gateway: Gateway, public_key: ec.EllipticCurvePublicKey) -> DeviceCertificate:
    issuing = active_issuing_ca()
    cert = ca.issue_device_certificate(
        public_key=public_key,
        serial=gateway.serial,
        issuer_certificate=issuing.certificate(),
        issuer_key=_ca_key(issuing),
        now=timezone.now(),
        days=conf.get("GRIDFLEET_PKI_DEVICE_CERT_DAYS"),
        crl_url=_crl_url(issuing),
    )
    return _store_certificate(gateway=gateway, cert=cert, issuer=issuing)


def _active_certificates(gateway: Gateway) -> Any:
    return DeviceCertificate.objects.filter(
        gateway=gateway, status=DeviceCertificate.Status.ACTIVE, not_after__gt=timezone.now()
    )


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
        raise InvalidEnrollmentToken("Unknown enrollment token; check it was copied whole.")
    if row.used_at is not None:
        raise EnrollmentTokenUsed(
            f"This enrollment token was already used at {row.used_at.isoformat()}; ask an admin for a new one."
        )
    if timezone.now() > row.expires_at:
        raise EnrollmentTokenExpired(
            f"This enrollment token expired at {row.expires_at.isoformat()}; ask an admin for a new one."
        )
    if row.serial != serial:
        raise TokenSerialMismatch(f"This enrollment token is for serial {row.serial}, not {serial}.")
    csr = ca.load_csr(csr_pem, expected_common_name=serial)
    active_issuing_ca()  # refuse before consuming the token if there is nothing to issue from
    gateway = Gateway.objects.filter(serial=serial).first()
    if gateway is not None and gateway.organization_id != row.organization_id:
        raise TokenSerialMismatch(f"Serial {serial} now belongs to another organization; ask an admin.")
    if gateway is not None and gateway.status == Gateway.Status.DECOMMISSIONED:
        raise GatewayDecommissioned(f"Gateway {serial} is decommissioned.")
    if gateway is not None and not row.reenroll and _active_certificates(gateway).exists():
        raise AlreadyEnrolled(
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
    if conf.get("GRIDFLEET_PKI_REQUIRE_ACCEPTANCE"):
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
        raise UnknownEnrollmentRequest("No such enrollment request.")
    if request.status == EnrollmentRequest.Status.REJECTED:
        raise EnrollmentRejected("An admin rejected this enrollment; ask for a new enrollment token.")
    return request


def _pending(request: EnrollmentRequest) -> EnrollmentRequest:
    locked = EnrollmentRequest.objects.select_for_update().select_related("gateway").get(pk=request.pk)
    if locked.status != EnrollmentRequest.Status.PENDING:
        raise DomainError(f"This request is already {locked.status}.", code="not_pending")
    return locked


@transaction.atomic
def accept_enrollment_request(*, request: EnrollmentRequest, user: Any, ip: str | None = None) -> DeviceCertificate:
    request = _pending(request)
    csr = ca.load_csr(request.csr_pem, expected_common_name=request.gateway.serial)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    certificate = _complete_enrollment(
        gateway=request.gateway, public_key=public_key, reenroll=request.reenroll, user=user, ip=ip
    )
    request.status = EnrollmentRequest.Status.ACCEPTED
    request.certificate = certificate
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save()
    record(action="pki.enrollment.accept", target=request, user=user, ip=ip)
    return certificate


@transaction.atomic
def reject_enrollment_request(*, request: EnrollmentRequest, user: Any, ip: str | None = None) -> None:
    request = _pending(request)
    request.status = EnrollmentRequest.Status.REJECTED
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save()
    record(action="pki.enrollment.reject", target=request, user=user, ip=ip)


# --- authentication --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_at: datetime
    certificate: DeviceCertificate


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{field}' must be a non-empty base64 string.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequest(f"'{field}' is not valid base64.") from e


def _parse_auth_payload(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequest("'payload' does not decode to JSON.") from e
    if not isinstance(payload, dict):
        raise InvalidRequest("'payload' must be a JSON object.")
    expected = {"typ": str, "serial": str, "iat": int, "nonce": str}
    for name, kind in expected.items():
        if not isinstance(payload.get(name), kind) or isinstance(payload.get(name), bool):
            raise InvalidRequest(f"payload field '{name}' is missing or not a {kind.__name__}.")
    if payload["typ"] != AUTH_REQUEST_TYPE:
        raise InvalidRequest(f"payload 'typ' must be '{AUTH_REQUEST_TYPE}'.")
    if not 16 <= len(payload["nonce"]) <= 64:
        raise InvalidRequest("payload 'nonce' must be 16 to 64 characters.")
    return payload


def _trust_store() -> tuple[list[x509.Certificate], dict[str, CertificateAuthority], dict[str, list[TrustAnchor]]]:
    """Every certificate we trust as an anchor, with what each one is."""
    authorities = {a.sha256: a for a in CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ISSUING)}
    anchors: dict[str, list[TrustAnchor]] = {}
    for anchor in TrustAnchor.objects.all():
        anchors.setdefault(anchor.sha256, []).append(anchor)
    certificates = [a.certificate() for a in authorities.values()]
    certificates += [rows[0].certificate() for rows in anchors.values()]
    return certificates, authorities, anchors


def _known_certificate(leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> DeviceCertificate:
    """The DeviceCertificate for a leaf that chains to a trusted anchor (recorded on first sight if external)."""
    now = timezone.now()
    store, authorities, anchors = _trust_store()
    anchor_cert = ca.verify_chain(leaf, intermediates=intermediates, anchors=store, now=now)
    sha256 = ca.certificate_sha256(leaf)
    known = DeviceCertificate.objects.select_related("gateway", "gateway__organization").filter(sha256=sha256).first()
    if known is not None:
        return known
    anchor_sha256 = ca.certificate_sha256(anchor_cert)
    if anchor_sha256 in authorities:
        raise UnknownCertificate("This certificate was issued by the Gridfleet CA but is not in its records.")
    serial = ca.common_name(leaf.subject) or ""
    gateway = Gateway.objects.select_related("organization").filter(serial=serial).first()
    matching = [
        a for a in anchors[anchor_sha256] if a.organization_id in (None, getattr(gateway, "organization_id", -1))
    ]
    if gateway is None or not matching:
        raise UnknownGateway(
            f"No gateway with serial {serial!r} is in the inventory of an organization trusting this issuer."
        )
    certificate = _store_certificate(gateway=gateway, cert=leaf, issuer=None, trust_anchor=matching[0])
    record(
        action="pki.certificate.external_seen",
        target=certificate,
        gateway=gateway,
        detail={"lfdi": certificate.lfdi, "anchor": matching[0].name},
    )
    return certificate


def _check_usable(certificate: DeviceCertificate) -> None:
    if certificate.status == DeviceCertificate.Status.REVOKED:
        raise CertificateRevoked(
            f"Certificate {certificate.serial_number} was revoked ({certificate.revocation_reason}); re-enroll."
        )
    if timezone.now() > certificate.not_after:
        raise CertificateExpired(f"Certificate {certificate.serial_number} expired; re-enroll.")
    if certificate.gateway.status == Gateway.Status.DECOMMISSIONED:
        raise GatewayDecommissioned(f"Gateway {certificate.gateway.serial} is decommissioned.")


def _create_access_token(certificate: DeviceCertificate) -> IssuedAccessToken:
    secret = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=conf.get("GRIDFLEET_PKI_ACCESS_TOKEN_TTL"))
    AccessToken.objects.create(
        token_sha256=_sha256(secret), certificate=certificate, gateway=certificate.gateway, expires_at=expires_at
    )
    return IssuedAccessToken(token=secret, expires_at=expires_at, certificate=certificate)


def _authenticate(
    *,
    certificate_pem: Any,
    chain_pem: Any,
    payload_b64: Any,
    signature_b64: Any,
    context: dict[str, Any],
) -> IssuedAccessToken:
    if not isinstance(certificate_pem, str) or not certificate_pem:
        raise InvalidRequest("'certificate' must be the PEM certificate.")
    if not isinstance(chain_pem, str):
        raise InvalidRequest("'chain' must be a PEM string (empty for Gridfleet certificates).")
    payload_bytes = _b64(payload_b64, "payload")
    signature = _b64(signature_b64, "signature")
    payload = _parse_auth_payload(payload_bytes)
    context["serial"] = payload["serial"]
    leaf = ca.load_certificate(certificate_pem)
    certificate = _known_certificate(leaf, ca.load_certificates(chain_pem))
    context["gateway"] = certificate.gateway
    _check_usable(certificate)
    ca.verify_signature(leaf, data=payload_bytes, signature=signature)
    if payload["serial"] != ca.common_name(leaf.subject):
        raise SerialMismatch("The signed serial is not the certificate's subject CN.")
    skew = conf.get("GRIDFLEET_PKI_AUTH_MAX_SKEW")
    now = timezone.now()
    if abs(now.timestamp() - payload["iat"]) > skew:
        raise StaleRequest(f"'iat' is more than {skew} s away from server time {now.isoformat()}; check the clock.")
    try:
        with transaction.atomic():
            AuthNonce.objects.create(nonce=payload["nonce"], expires_at=now + timedelta(seconds=2 * skew))
    except IntegrityError as e:
        raise ReplayedRequest("This signed request was already used; sign a new one with a fresh nonce.") from e
    # last_seen is the uplink's business (fleet.uplink.presence); a token exchange is not traffic.
    return _create_access_token(certificate)


def authenticate_signed_request(
    *, certificate_pem: Any, chain_pem: Any, payload_b64: Any, signature_b64: Any, ip: str | None = None
) -> IssuedAccessToken:
    """Exchange a signed auth request (proof of key possession) for a short-lived bearer token."""
    context: dict[str, Any] = {}
    return _audited_refusal(
        "pki.auth.refused",
        ip=ip,
        context=context,
        call=lambda: _authenticate(
            certificate_pem=certificate_pem,
            chain_pem=chain_pem,
            payload_b64=payload_b64,
            signature_b64=signature_b64,
            context=context,
        ),
    )


def _client_certificate(*, certificate_pem: str, context: dict[str, Any]) -> DeviceCertificate:
    certificate = _known_certificate(ca.load_certificate(certificate_pem), [])
    context["gateway"] = certificate.gateway
    _check_usable(certificate)
    return certificate


def authenticate_client_certificate(*, certificate_pem: str, ip: str | None = None) -> DeviceCertificate:
    """The certificate a trusted TLS terminator verified (mutual TLS), checked against our records.

    The terminator proved key possession in the handshake; here we re-check the chain, validity
    and revocation, which the terminator may not know about.
    """
    context: dict[str, Any] = {}
    return _audited_refusal(
        "pki.client_certificate.refused",
        ip=ip,
        context=context,
        call=lambda: _client_certificate(certificate_pem=certificate_pem, context=context),
    )


def mint_access_token(*, gateway: Gateway) -> str:
    """A bearer token for a gateway's newest usable certificate, as if it had signed an auth request.

    For tests and server-side tools; gateways themselves go through authenticate_signed_request.
    """
    certificate = _active_certificates(gateway).select_related("gateway").order_by("-not_before").first()
    if certificate is None:
        raise UnknownCertificate(f"Gateway {gateway.serial} has no active certificate.")
    _check_usable(certificate)
    return _create_access_token(certificate).token


def _check_access_token(token: str) -> DeviceCertificate:
    row = (
        AccessToken.objects.select_related("certificate", "gateway", "gateway__organization")
        .filter(token_sha256=_sha256(token))
        .first()
    )
    if row is None:
        raise InvalidAccessToken("Unknown access token; get a new one from /gw/v1/auth/token.")
    certificate = row.certificate
    certificate.gateway = row.gateway
    if timezone.now() > row.expires_at:
        raise AccessTokenExpired(
            f"The access token expired at {row.expires_at.isoformat()}; get a new one from /gw/v1/auth/token."
        )
    _check_usable(certificate)
    return certificate


def authenticate_access_token(*, token: str, ip: str | None = None) -> DeviceCertificate:
    """The certificate (and through it the gateway) a bearer token stands for, or a refusal."""
    context: dict[str, Any] = {}

    def call() -> DeviceCertificate:
        row = AccessToken.objects.select_related("gateway").filter(token_sha256=_sha256(token)).first()
        context["gateway"] = row.gateway if row else None
        return _check_access_token(token)

    return _audited_refusal("pki.access_token.refused", ip=ip, context=context, call=call)


# --- renewal and revocation ------------------------------------------------------------------


def _renew(*, certificate: DeviceCertificate, csr_pem: Any, ip: str | None) -> DeviceCertificate:
    if not isinstance(csr_pem, str) or not csr_pem:
        raise InvalidRequest("'csr' must be the PEM certificate request.")
    if certificate.is_external:
        raise ExternalCertificate("Certificates from an external PKI are renewed by that PKI.")
    csr = ca.load_csr(csr_pem, expected_common_name=certificate.gateway.serial)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    if ca.public_key_sha256(public_key) != certificate.public_key_sha256:
        raise KeyMismatch("Renewal keeps the key: sign the CSR with the current key (a new key is re-enrollment).")
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


def _mark_revoked(certificate: DeviceCertificate, *, reason: str, now: datetime) -> None:
    certificate.status = DeviceCertificate.Status.REVOKED
    certificate.revoked_at = now
    certificate.revocation_reason = reason
    # Its bearer tokens stay in place: each use re-checks the certificate and answers
    # `certificate_revoked`, which tells the agent to stop rather than to fetch a new token.
    certificate.save(update_fields=["status", "revoked_at", "revocation_reason"])


def revoke_certificate(
    *, certificate: DeviceCertificate, reason: str, user: Any, ip: str | None = None
) -> DeviceCertificate:
    """Refuse the certificate (and its bearer tokens) from the next request on; republish the CRL."""
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


# --- CRL -------------------------------------------------------------------------------------


def _publish_crl(authority: CertificateAuthority, *, now: datetime) -> RevocationList:
    authority = CertificateAuthority.objects.select_for_update().get(pk=authority.pk)
    authority.crl_number += 1
    authority.save(update_fields=["crl_number"])
    next_update = now + timedelta(hours=conf.get("GRIDFLEET_PKI_CRL_VALIDITY_HOURS"))
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
