"""Refusals of the gateway identity protocol.

Each class carries the stable `code` agents branch on and the HTTP `status_code` it answers with
(docs/protocol/identity.md lists them). Services raise them; gateway views render
`{"error": code, "detail": message}`; every refusal is audited by the caller that catches it.
They share the one root, `fleet.core.errors.DomainError`.
"""

from __future__ import annotations

from fleet.core.errors import DomainError


class IdentityError(DomainError):
    code = "identity_error"


# --- malformed input -------------------------------------------------------------------------
class InvalidRequest(IdentityError):
    code = "invalid_request"


class InvalidCSR(IdentityError):
    code = "invalid_csr"


class SerialMismatch(IdentityError):
    code = "serial_mismatch"


class KeyMismatch(IdentityError):
    code = "key_mismatch"


# --- enrollment ------------------------------------------------------------------------------
class InvalidEnrollmentToken(IdentityError):
    code = "invalid_token"
    status_code = 401


class EnrollmentTokenExpired(IdentityError):
    code = "token_expired"
    status_code = 401


class EnrollmentTokenUsed(IdentityError):
    code = "token_used"
    status_code = 401


class TokenSerialMismatch(IdentityError):
    code = "token_serial_mismatch"
    status_code = 403


class AlreadyEnrolled(IdentityError):
    code = "already_enrolled"
    status_code = 409


class EnrollmentRejected(IdentityError):
    code = "enrollment_rejected"
    status_code = 403


class UnknownEnrollmentRequest(IdentityError):
    code = "unknown_request"
    status_code = 404


class CANotInitialized(IdentityError):
    code = "ca_not_initialized"
    status_code = 503


# --- certificate checks ----------------------------------------------------------------------
class InvalidCertificate(IdentityError):
    code = "invalid_certificate"
    status_code = 401


class UntrustedIssuer(IdentityError):
    code = "untrusted_issuer"
    status_code = 401


class UnknownCertificate(IdentityError):
    code = "unknown_certificate"
    status_code = 401


class CertificateExpired(IdentityError):
    code = "certificate_expired"
    status_code = 401


class CertificateRevoked(IdentityError):
    code = "certificate_revoked"
    status_code = 401


class ExternalCertificate(IdentityError):
    code = "external_certificate"
    status_code = 403


# --- signed auth request ---------------------------------------------------------------------
class BadSignature(IdentityError):
    code = "bad_signature"
    status_code = 401


class StaleRequest(IdentityError):
    code = "stale_request"
    status_code = 401


class ReplayedRequest(IdentityError):
    code = "replayed_request"
    status_code = 401


# --- gateway state ---------------------------------------------------------------------------
class UnknownGateway(IdentityError):
    code = "unknown_gateway"
    status_code = 401


class GatewayDecommissioned(IdentityError):
    code = "gateway_decommissioned"
    status_code = 403


# --- bearer tokens ---------------------------------------------------------------------------
class InvalidAccessToken(IdentityError):
    code = "invalid_access_token"
    status_code = 401


class AccessTokenExpired(IdentityError):
    code = "access_token_expired"
    status_code = 401
