"""Constants and helpers shared by the services service modules."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

from fleet.audit.services import record
from fleet.inventory.models import Gateway
from pki.errors import (
    IdentityError,
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
