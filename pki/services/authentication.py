"""State changes of the PKI: authentication."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from fleet.audit.services import record
from fleet.inventory.models import Gateway
from pki import ca
from pki.errors import (
    AccessTokenExpiredError,
    CertificateExpiredError,
    CertificateRevokedError,
    GatewayDecommissionedError,
    InvalidAccessTokenError,
    InvalidRequestError,
    ReplayedRequestError,
    SerialMismatchError,
    StaleRequestError,
    UnknownCertificateError,
    UnknownGatewayError,
)
from pki.models import (
    AccessToken,
    AuthNonce,
    CertificateAuthority,
    DeviceCertificate,
    TrustAnchor,
)

from ._common import ACCESS_TOKEN_PREFIX, AUTH_REQUEST_TYPE, _audited_refusal, _sha256
from .certificates import _store_certificate

# The gateway's random nonce: long enough not to repeat, short enough to keep the nonce table small.
NONCE_MIN_CHARS = 16
NONCE_MAX_CHARS = 64


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_at: datetime
    certificate: DeviceCertificate


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"'{field}' must be a non-empty base64 string.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidRequestError(f"'{field}' is not valid base64.") from e


def _parse_auth_payload(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequestError("'payload' does not decode to JSON.") from e
    if not isinstance(payload, dict):
        raise InvalidRequestError("'payload' must be a JSON object.")
    expected = {"typ": str, "serial": str, "iat": int, "nonce": str}
    for name, kind in expected.items():
        if not isinstance(payload.get(name), kind) or isinstance(payload.get(name), bool):
            raise InvalidRequestError(f"payload field '{name}' is missing or not a {kind.__name__}.")
    if payload["typ"] != AUTH_REQUEST_TYPE:
        raise InvalidRequestError(f"payload 'typ' must be '{AUTH_REQUEST_TYPE}'.")
    if not NONCE_MIN_CHARS <= len(payload["nonce"]) <= NONCE_MAX_CHARS:
        raise InvalidRequestError(f"payload 'nonce' must be {NONCE_MIN_CHARS} to {NONCE_MAX_CHARS} characters.")
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
        raise UnknownCertificateError("This certificate was issued by the Gridfleet CA but is not in its records.")
    serial = ca.common_name(leaf.subject) or ""
    gateway = Gateway.objects.select_related("organization").filter(serial=serial).first()
    matching = [
        a for a in anchors[anchor_sha256] if a.organization_id in (None, getattr(gateway, "organization_id", -1))
    ]
    if gateway is None or not matching:
        raise UnknownGatewayError(
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
        raise CertificateRevokedError(
            f"Certificate {certificate.serial_number} was revoked ({certificate.revocation_reason}); re-enroll."
        )
    if timezone.now() > certificate.not_after:
        raise CertificateExpiredError(f"Certificate {certificate.serial_number} expired; re-enroll.")
    if certificate.gateway.status == Gateway.Status.DECOMMISSIONED:
        raise GatewayDecommissionedError(f"Gateway {certificate.gateway.serial} is decommissioned.")


def _create_access_token(certificate: DeviceCertificate) -> IssuedAccessToken:
    secret = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=settings.GRIDFLEET_PKI_ACCESS_TOKEN_TTL)
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
        raise InvalidRequestError("'certificate' must be the PEM certificate.")
    if not isinstance(chain_pem, str):
        raise InvalidRequestError("'chain' must be a PEM string (empty for Gridfleet certificates).")
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
        raise SerialMismatchError("The signed serial is not the certificate's subject CN.")
    skew = settings.GRIDFLEET_PKI_AUTH_MAX_SKEW
    now = timezone.now()
    if abs(now.timestamp() - payload["iat"]) > skew:
        raise StaleRequestError(
            f"'iat' is more than {skew} s away from server time {now.isoformat()}; check the clock."
        )
    try:
        with transaction.atomic():
            AuthNonce.objects.create(nonce=payload["nonce"], expires_at=now + timedelta(seconds=2 * skew))
    except IntegrityError as e:
        raise ReplayedRequestError("This signed request was already used; sign a new one with a fresh nonce.") from e
    # last_seen is written from uplink traffic (fleet.inventory.presence); a token exchange is not traffic.
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


def _check_access_token(token: str) -> DeviceCertificate:
    row = (
        AccessToken.objects.select_related("certificate", "gateway", "gateway__organization")
        .filter(token_sha256=_sha256(token))
        .first()
    )
    if row is None:
        raise InvalidAccessTokenError("Unknown access token; get a new one from /gw/v1/auth/token.")
    certificate = row.certificate
    certificate.gateway = row.gateway
    if timezone.now() > row.expires_at:
        raise AccessTokenExpiredError(
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
