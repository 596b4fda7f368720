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
class InvalidRequestError(IdentityError):
    code = "invalid_request"


class InvalidCSRError(IdentityError):
    code = "invalid_csr"


class SerialMismatchError(IdentityError):
    code = "serial_mismatch"


class KeyMismatchError(IdentityError):
    code = "key_mismatch"


# --- enrollment ------------------------------------------------------------------------------
class InvalidEnrollmentTokenError(IdentityError):
    code = "invalid_token"
    status_code = 401


class EnrollmentTokenExpiredError(IdentityError):
    code = "token_expired"
    status_code = 401


class EnrollmentTokenUsedError(IdentityError):
    code = "token_used"
    status_code = 401


class TokenSerialMismatchError(IdentityError):
    code = "token_serial_mismatch"
    status_code = 403


class AlreadyEnrolledError(IdentityError):
    code = "already_enrolled"
    status_code = 409


class EnrollmentRejectedError(IdentityError):
    code = "enrollment_rejected"
    status_code = 403


class UnknownEnrollmentRequestError(IdentityError):
    code = "unknown_request"
    status_code = 404


class CANotInitializedError(IdentityError):
    code = "ca_not_initialized"
    status_code = 503


# --- certificate checks ----------------------------------------------------------------------
class InvalidCertificateError(IdentityError):
    code = "invalid_certificate"
    status_code = 401


class UntrustedIssuerError(IdentityError):
    code = "untrusted_issuer"
    status_code = 401


class UnknownCertificateError(IdentityError):
    code = "unknown_certificate"
    status_code = 401


class CertificateExpiredError(IdentityError):
    code = "certificate_expired"
    status_code = 401


class CertificateRevokedError(IdentityError):
    code = "certificate_revoked"
    status_code = 401


class ExternalCertificateError(IdentityError):
    code = "external_certificate"
    status_code = 403


# --- signed auth request ---------------------------------------------------------------------
class BadSignatureError(IdentityError):
    code = "bad_signature"
    status_code = 401


class StaleRequestError(IdentityError):
    code = "stale_request"
    status_code = 401


class ReplayedRequestError(IdentityError):
    code = "replayed_request"
    status_code = 401


# --- gateway state ---------------------------------------------------------------------------
class UnknownGatewayError(IdentityError):
    code = "unknown_gateway"
    status_code = 401


class GatewayDecommissionedError(IdentityError):
    code = "gateway_decommissioned"
    status_code = 403


# --- bearer tokens ---------------------------------------------------------------------------
class InvalidAccessTokenError(IdentityError):
    code = "invalid_access_token"
    status_code = 401


class AccessTokenExpiredError(IdentityError):
    code = "access_token_expired"
    status_code = 401
