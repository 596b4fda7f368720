"""Refusals of the gateway identity protocol.

Each class carries the stable `code` agents branch on and the HTTP status it answers with
(docs/protocol/identity.md lists them). Services raise them; gateway views render
`{"error": code, "detail": message}`; every refusal is audited by the caller that catches it.
"""

from __future__ import annotations

from typing import ClassVar


class IdentityError(Exception):
    code: ClassVar[str] = "identity_error"
    status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
    status = 401


class EnrollmentTokenExpired(IdentityError):
    code = "token_expired"
    status = 401


class EnrollmentTokenUsed(IdentityError):
    code = "token_used"
    status = 401


class TokenSerialMismatch(IdentityError):
    code = "token_serial_mismatch"
    status = 403


class AlreadyEnrolled(IdentityError):
    code = "already_enrolled"
    status = 409


class EnrollmentRejected(IdentityError):
    code = "enrollment_rejected"
    status = 403


class UnknownEnrollmentRequest(IdentityError):
    code = "unknown_request"
    status = 404


class CANotInitialized(IdentityError):
    code = "ca_not_initialized"
    status = 503


# --- certificate checks ----------------------------------------------------------------------
class InvalidCertificate(IdentityError):
    code = "invalid_certificate"
    status = 401


class UntrustedIssuer(IdentityError):
    code = "untrusted_issuer"
    status = 401


class UnknownCertificate(IdentityError):
    code = "unknown_certificate"
    status = 401


class CertificateExpired(IdentityError):
    code = "certificate_expired"
    status = 401


class CertificateRevoked(IdentityError):
    code = "certificate_revoked"
    status = 401


class ExternalCertificate(IdentityError):
    code = "external_certificate"
    status = 403


# --- signed auth request ---------------------------------------------------------------------
class BadSignature(IdentityError):
    code = "bad_signature"
    status = 401


class StaleRequest(IdentityError):
    code = "stale_request"
    status = 401


class ReplayedRequest(IdentityError):
    code = "replayed_request"
    status = 401


# --- gateway state ---------------------------------------------------------------------------
class UnknownGateway(IdentityError):
    code = "unknown_gateway"
    status = 401


class GatewayDecommissioned(IdentityError):
    code = "gateway_decommissioned"
    status = 403


# --- bearer tokens ---------------------------------------------------------------------------
class InvalidAccessToken(IdentityError):
    code = "invalid_access_token"
    status = 401


class AccessTokenExpired(IdentityError):
    code = "access_token_expired"
    status = 401
