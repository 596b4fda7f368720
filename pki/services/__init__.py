"""State changes of the PKI: CAs, enrollment, gateway authentication, renewal, revocation, CRLs.

Each public function is one transaction and writes its audit entry. Refusals of the gateway
protocol (pki.errors.IdentityError) are audited too, after the refused transaction rolled back,
so an attacker probing tokens or replaying requests leaves a trace.
"""

from ._common import ACCESS_TOKEN_PREFIX, AUDIT_VALUE_LIMIT, AUTH_REQUEST_TYPE, ENROLLMENT_TOKEN_PREFIX, MAX_BATCH_SIZE
from .authentication import (
    IssuedAccessToken,
    authenticate_access_token,
    authenticate_client_certificate,
    authenticate_signed_request,
)
from .authorities import active_issuing_ca, initialize_ca, rotate_kek
from .crl import publish_crls, purge_expired_credentials
from .enrollment import Enrollment, accept_enrollment_request, enroll, enrollment_status, reject_enrollment_request
from .revocation import renew_certificate, revoke_certificate
from .tokens import create_enrollment_token, create_enrollment_token_batch, withdraw_enrollment_token
from .trust_anchors import import_trust_anchor, remove_trust_anchor

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "AUDIT_VALUE_LIMIT",
    "AUTH_REQUEST_TYPE",
    "ENROLLMENT_TOKEN_PREFIX",
    "MAX_BATCH_SIZE",
    "Enrollment",
    "IssuedAccessToken",
    "accept_enrollment_request",
    "active_issuing_ca",
    "authenticate_access_token",
    "authenticate_client_certificate",
    "authenticate_signed_request",
    "create_enrollment_token",
    "create_enrollment_token_batch",
    "enroll",
    "enrollment_status",
    "import_trust_anchor",
    "initialize_ca",
    "publish_crls",
    "purge_expired_credentials",
    "reject_enrollment_request",
    "remove_trust_anchor",
    "renew_certificate",
    "revoke_certificate",
    "rotate_kek",
    "withdraw_enrollment_token",
]
