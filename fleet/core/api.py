"""The REST API's shared pieces: the one exception handler and error body, strict serializers.

Every API error answers in one body (docs/api-errors.md):

    {"code": "<stable reason>", "detail": "<what to change>", "fields": {"<field>": ["..."]}}

`fields` appears only when input fields are at fault; `errors` (a list) only for itemised
refusals such as the rows of a CSV import. The gateway protocol (/gw/v1/) keeps its documented
frame, `{"error": "<code>", "detail": "<message>"}`, built by the same handler from the same
attributes of the one root error, `fleet.core.errors.DomainError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from fleet.core.errors import DomainError, NotFoundError, PermissionDeniedError


class AuthenticationRefused(exceptions.AuthenticationFailed):
    """DRF wants authentication failures as its own exception; this one carries the domain refusal."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.error = error


class InvalidInputError(DomainError):
    """Input that fails the serializer's or the model's validation, field by field."""

    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, Any]) -> None:
        super().__init__(message)
        self.fields = fields


def _plain(messages: Any) -> Any:
    """DRF's nested ErrorDetail lists and dicts as plain JSON (nested serializers keep their shape)."""
    if isinstance(messages, dict):
        return {str(key): _plain(value) for key, value in messages.items()}
    if isinstance(messages, list | tuple):
        return [_plain(value) for value in messages]
    return str(messages)


def _first_message(messages: Any) -> str:
    if isinstance(messages, dict):
        return next((_first_message(v) for v in messages.values() if _first_message(v)), "")
    if isinstance(messages, list | tuple):
        return next((_first_message(v) for v in messages if _first_message(v)), "")
    return str(messages)


def invalid_input(detail: Any) -> InvalidInputError:
    """A serializer's (or Django's) validation detail as the one error: a summary plus the fields."""
    if not isinstance(detail, dict):
        messages = [_first_message(item) for item in (detail if isinstance(detail, list) else [detail])]
        return InvalidInputError("; ".join(m for m in messages if m) or "Invalid input.", fields={})
    fields = _plain(detail)
    general = fields.pop("non_field_errors", None) or fields.pop("__all__", None)
    summary = [_first_message(general)] if general else []
    summary += [f"{name}: {_first_message(messages)}" for name, messages in list(fields.items())[:3]]
    return InvalidInputError("; ".join(summary) or "Invalid input.", fields=fields)


def _protected(exc: ProtectedError) -> DomainError:
    blockers = sorted({str(obj) for obj in exc.protected_objects})[:5]
    return DomainError(
        f"Cannot delete: still referenced by {', '.join(blockers)}. Remove or move those first.",
        code="protected",
        status_code=status.HTTP_409_CONFLICT,
    )


def _api_exception(exc: exceptions.APIException) -> DomainError:
    detail = exc.detail
    if isinstance(detail, list | dict):
        return invalid_input(detail)
    return DomainError(str(detail), code=getattr(detail, "code", None) or exc.default_code, status_code=exc.status_code)


# Framework exceptions as the one root error, most specific first (DRF's base class last).
_CONVERSIONS: tuple[tuple[type[Exception], Callable[[Any], DomainError]], ...] = (
    (AuthenticationRefused, lambda e: DomainError(e.error.message, code=e.error.code, status_code=e.status_code)),
    (exceptions.ValidationError, lambda e: invalid_input(e.detail)),
    (DjangoValidationError, lambda e: invalid_input(e.message_dict if hasattr(e, "error_dict") else e.messages)),
    (Http404, lambda e: NotFoundError(str(e) or "Not found.")),
    (DjangoPermissionDenied, lambda e: PermissionDeniedError(str(e) or "You may not do this.")),
    (
        RequestDataTooBig,
        lambda e: DomainError(
            "Request body too large; send less data or split it into several requests.",
            code="too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        ),
    ),
    (ProtectedError, _protected),
    # A race past the serializer's uniqueness check; the row was not written.
    (IntegrityError, lambda e: DomainError("This would duplicate an existing object.", code="duplicate")),
    (exceptions.APIException, _api_exception),
)


def refusal_of(exc: Exception) -> DomainError | None:
    """Any exception an API view may see, as the one root error; None for a bug (answered 500)."""
    if isinstance(exc, DomainError):
        return exc
    for kind, convert in _CONVERSIONS:
        if isinstance(exc, kind):
            return convert(exc)
    return None


def error_body(error: DomainError) -> dict[str, Any]:
    """The one body of every API error."""
    body: dict[str, Any] = {"code": error.code, "detail": error.message}
    fields = getattr(error, "fields", None)
    if fields:
        body["fields"] = fields
    elif error.field:
        body["fields"] = {error.field: [error.message]}
    if items := getattr(error, "items", None):
        body["errors"] = items
    return body


def protocol_frame(error: DomainError) -> dict[str, Any]:
    """The gateway protocol's error body (docs/protocol/identity.md, conventions)."""
    return {"error": error.code, "detail": error.message}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The one DRF exception handler: every refusal in one body, gateway endpoints in their frame."""
    error = refusal_of(exc)
    if error is None:
        return None
    headers: dict[str, str] = {}
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if wait := getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(wait))
    gateway_protocol = getattr(context.get("view"), "gateway_protocol", False)
    set_rollback()
    return Response(
        protocol_frame(error) if gateway_protocol else error_body(error), status=error.status_code, headers=headers
    )


class StrictFieldsMixin:
    """Refuse fields the serializer does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
            unknown = sorted(set(data) - known)
            if unknown:
                read_only = {name for name, field in self.fields.items() if field.read_only}  # type: ignore[attr-defined]
                raise exceptions.ValidationError(
                    {name: ["This field is read-only." if name in read_only else "Unknown field."] for name in unknown}
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class SelectorQuerysetMixin:
    """A view whose rows come from a tenancy selector: set `selector = staticmethod(<x_visible_to>)`.

    Selectors are the one place tenancy is decided (a guessed id of another tenant's row is a 404).
    """

    @staticmethod
    def selector(user: Any) -> Any:
        raise NotImplementedError("Set `selector = staticmethod(<tenancy selector>)` on the view.")

    def get_queryset(self) -> Any:
        return self.selector(self.request.user)  # type: ignore[attr-defined]


def only_user_api_endpoints(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[Any]:
    """drf-spectacular hook: the OpenAPI document covers the user/integrator API under /api/.

    Gateway-facing endpoints (/gw/v1/, /tuf/, WebSockets) follow the versioned gateway protocol in docs/.
    """
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
