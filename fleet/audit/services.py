"""Writing the audit trail. Every service that changes state calls `record` in its transaction."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.db import models, transaction

from .models import AuditEntry

ModelT = TypeVar("ModelT", bound=models.Model)


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    return value


def snapshot(obj: models.Model, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The object's concrete fields (foreign keys as ids) and many-to-many values, JSON-safe."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in exclude:
            continue
        data[field.attname] = _json_safe(field.value_from_object(obj))
    if obj.pk is not None:
        for m2m in obj._meta.many_to_many:
            if m2m.name not in exclude:
                data[m2m.name] = sorted(str(related) for related in getattr(obj, m2m.name).all())
    return data


def record(
    *,
    action: str,
    target: models.Model | None = None,
    user: Any = None,
    gateway: Any = None,
    organization: Any = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
    detail: Any = None,
) -> AuditEntry:
    if organization is None and target is not None:
        organization = getattr(target, "organization", None)
    if gateway is not None and organization is None:
        organization = gateway.organization
    authenticated_user = user if getattr(user, "is_authenticated", False) else None
    if authenticated_user is not None:
        actor_label = authenticated_user.get_username()
    elif gateway is not None:
        actor_label = f"gateway:{gateway.serial}"
    else:
        actor_label = "system"
    return AuditEntry.objects.create(
        action=action,
        actor_user=authenticated_user,
        actor_gateway=gateway,
        actor_label=actor_label,
        organization=organization,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None and target.pk is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        before=_json_safe(before),
        after=_json_safe(after),
        ip=ip,
        detail=_json_safe(detail),
    )


def request_ip(request: Any) -> str | None:
    """The client address; X-Forwarded-For is believed only from settings.TRUSTED_PROXIES."""
    meta = getattr(request, "META", None)
    if meta is None:  # a DRF Request
        meta = request._request.META
    remote: str | None = meta.get("REMOTE_ADDR") or None
    forwarded: str = meta.get("HTTP_X_FORWARDED_FOR", "")
    if remote in settings.TRUSTED_PROXIES and forwarded:
        candidate = forwarded.split(",", maxsplit=1)[0].strip()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return remote
        return candidate
    return remote


def _split_many_to_many(model: type[models.Model], data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    m2m_names = {field.name for field in model._meta.many_to_many}
    fields = {k: v for k, v in data.items() if k not in m2m_names}
    relations = {k: v for k, v in data.items() if k in m2m_names}
    return fields, relations


@transaction.atomic
def create_audited(
    model: type[ModelT], *, data: dict[str, Any], user: Any = None, gateway: Any = None, ip: str | None = None
) -> ModelT:
    """Create a model instance after full validation and write its audit entry, in one transaction."""
    fields, relations = _split_many_to_many(model, data)
    instance = model(**fields)
    instance.full_clean()
    instance.save()
    for name, values in relations.items():
        getattr(instance, name).set(values)
    record(
        action=f"{model._meta.model_name}.create",
        target=instance,
        user=user,
        gateway=gateway,
        ip=ip,
        after=snapshot(instance),
    )
    return instance


@transaction.atomic
def update_audited(
    instance: ModelT, *, data: dict[str, Any], user: Any = None, gateway: Any = None, ip: str | None = None
) -> ModelT:
    """Apply changes after full validation; audit before/after only when something changed."""
    before = snapshot(instance)
    fields, relations = _split_many_to_many(type(instance), data)
    for name, value in fields.items():
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    for name, values in relations.items():
        getattr(instance, name).set(values)
    after = snapshot(instance)
    changed = {k for k in after if before.get(k) != after[k]} - {"updated"}
    if changed:
        record(
            action=f"{instance._meta.model_name}.update",
            target=instance,
            user=user,
            gateway=gateway,
            ip=ip,
            before={k: before.get(k) for k in sorted(changed)},
            after={k: after[k] for k in sorted(changed)},
        )
    return instance


@transaction.atomic
def delete_audited(instance: models.Model, *, user: Any = None, ip: str | None = None) -> None:
    record(action=f"{instance._meta.model_name}.delete", target=instance, user=user, ip=ip, before=snapshot(instance))
    instance.delete()
