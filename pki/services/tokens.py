"""State changes of the PKI: enrollment tokens."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from fleet.accounts.authorization import Actor, authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record
from fleet.core.errors import DomainError
from fleet.inventory.models import Gateway, Organization, serial_validator
from pki.models import (
    EnrollmentToken,
)

from ._common import ENROLLMENT_TOKEN_PREFIX, MAX_BATCH_SIZE, _sha256


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
    return timezone.now() + timedelta(hours=valid_hours or settings.GRIDFLEET_PKI_ENROLLMENT_TOKEN_HOURS)


@transaction.atomic
def create_enrollment_token(
    *,
    organization: Organization,
    serial: str,
    user: Actor,
    reenroll: bool = False,
    valid_hours: int | None = None,
    ip: str | None = None,
) -> tuple[EnrollmentToken, str]:
    """A one-time token for one serial; returns the row and the secret (shown once, stored hashed)."""
    authorize(user, Capability.MANAGE_PKI, organization)
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
    user: Actor,
    batch: str,
    valid_hours: int | None = None,
    ip: str | None = None,
) -> list[tuple[EnrollmentToken, str]]:
    """Tokens for a factory run; all or nothing, the first bad serial is named."""
    authorize(user, Capability.MANAGE_PKI, organization)
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
def withdraw_enrollment_token(*, token: EnrollmentToken, user: Actor, ip: str | None = None) -> None:
    authorize(user, Capability.MANAGE_PKI, token.organization_id)
    record(
        action="pki.enrollment_token.withdraw",
        target=token,
        user=user,
        ip=ip,
        before={"serial": token.serial, "expires_at": token.expires_at, "used_at": token.used_at},
    )
    token.delete()
