"""The one root of every refusal in Gridfleet: `DomainError`.

A service refuses an operation by raising a subclass of `DomainError`. Every refusal carries

- `message`: what went wrong and what to change, for a person;
- `code`: a stable, machine-readable reason (clients and agents branch on it);
- `status_code`: the HTTP status it answers with (400 unless the class says otherwise);
- `field`: the input field at fault, when there is one.

Each app derives its own family from this root (`pki.errors.IdentityError`,
`firmware.errors.FirmwareError`, `firmware.tuf.errors.RepositoryError`,
`firmware.deployments.errors.DeploymentError`, `fleet.uplink.protocol.ProtocolError`, ...).
Subclasses set `code` and `status_code` as class attributes; a raise may override both.
The REST API renders every one in the same body (`fleet.core.api.exception_handler`); the
gateway protocol renders the same attributes in its documented frames.

This module imports nothing from Django's settings or the apps, so pure cores may use it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


class DomainError(Exception):
    """An operation refused by a domain rule."""

    code: str = "invalid"
    status_code: int = 400

    def __init__(
        self, message: str, *, code: str | None = None, field: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.field = field


class NotFoundError(DomainError):
    """The object does not exist, or is not visible to the one asking (the same answer for both)."""

    code = "not_found"
    status_code = 404


class ConflictError(DomainError):
    """The operation does not apply to the object's current state."""

    code = "conflict"
    status_code = 409


class PermissionDeniedError(DomainError, PermissionDenied):
    """The acting user's or gateway's role does not allow the operation (raised by services).

    Also a Django `PermissionDenied`, so a web page that lets it through answers 403.
    """

    code = "permission_denied"
    status_code = 403
