"""User and membership management, and the authorized, audited writes of plain models.

Admins of an organization manage its people. `create_object`, `update_object` and `delete_object`
are the services behind the API's plain model endpoints (sites, gateways, groups, memberships,
monitoring settings...): each checks the actor's capability in the organization that owns the row
before and after the change, then writes it with its audit entry.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import models, transaction

from fleet.audit.services import create_audited, delete_audited, record, update_audited

from .authorization import Actor, authorize, authorize_superuser
from .models import Membership
from .roles import Capability

ModelT = TypeVar("ModelT", bound=models.Model)


def _owner(model: type[models.Model], values: dict[str, Any] | models.Model) -> Any:
    """The organization that owns a row (or the row these values describe)."""
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name, None)
    organization = get("organization")
    gateway = get("gateway")
    if organization is None and gateway is not None:
        organization = gateway.organization
    return organization


# The capability that changes each plain model, in the organization that owns the row (roles.py
# says which roles hold it). Organizations themselves are changed by superusers only.
WRITE_CAPABILITY: dict[str, Capability] = {
    "inventory.site": Capability.MANAGE_INVENTORY,
    "inventory.gateway": Capability.MANAGE_INVENTORY,
    "inventory.gatewaygroup": Capability.MANAGE_INVENTORY,
    "inventory.fielddevice": Capability.MANAGE_INVENTORY,
    "accounts.membership": Capability.MANAGE_MEMBERS,
    "monitoring.monitoringsettings": Capability.MANAGE_SETTINGS,
    "monitoring.notificationroute": Capability.MANAGE_SETTINGS,
    "monitoring.silence": Capability.TRIAGE_ALARMS,
}


def _authorize_write(model: type[models.Model], actor: Actor, *owners: Any) -> None:
    label = model._meta.label_lower
    if label == "inventory.organization":
        authorize_superuser(actor, "create or change organizations")
        return
    if label not in WRITE_CAPABILITY:
        # Fail closed: a model without a rule here cannot be written through these services.
        authorize_superuser(actor, f"change {model._meta.verbose_name_plural}")
        return
    for organization in {owner for owner in owners if owner is not None} or {None}:
        authorize(actor, WRITE_CAPABILITY[label], organization)


def create_object(model: type[ModelT], *, data: dict[str, Any], actor: Actor, ip: str | None = None) -> ModelT:
    _authorize_write(model, actor, _owner(model, data))
    return create_audited(model, data=data, user=actor, ip=ip)


def update_object(instance: ModelT, *, data: dict[str, Any], actor: Actor, ip: str | None = None) -> ModelT:
    """The actor needs the capability where the row is and, when it moves, where it goes."""
    model = type(instance)
    _authorize_write(model, actor, _owner(model, instance), _owner(model, data))
    return update_audited(instance, data=data, user=actor, ip=ip)


def delete_object(instance: models.Model, *, actor: Actor, ip: str | None = None) -> None:
    _authorize_write(type(instance), actor, _owner(type(instance), instance))
    delete_audited(instance, user=actor, ip=ip)


@transaction.atomic
def create_user_with_membership(
    *, username: str, email: str, password: str, organization: Any, role: str, actor: Actor, ip: str | None = None
) -> Any:
    authorize(actor, Capability.MANAGE_MEMBERS, organization)
    user_model = get_user_model()
    user = user_model(username=username, email=email)
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    membership = Membership.objects.create(user=user, organization=organization, role=role)
    record(
        action="user.create",
        target=membership,
        organization=organization,
        user=actor,
        ip=ip,
        after={"username": username, "email": email, "role": role},
    )
    return user
