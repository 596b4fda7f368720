"""Operations that change the inventory. Simple CRUD goes through fleet.audit's audited helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from fleet.accounts.authorization import Actor, authorize_superuser
from fleet.accounts.services import create_object
from fleet.audit.services import create_audited, record
from fleet.core.errors import DomainError

from .csv_io import CsvFormatError, RowError, read_rows
from .models import Gateway, GatewayAttributeChange, Organization, Site


@dataclass(frozen=True)
class ImportResult:
    kind: str
    created: int


def _row_input(kind: str, row: dict[str, str], user: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Turn a CSV row into serializer input, resolving natural keys; returns (data, errors)."""
    data: dict[str, Any] = {key: value for key, value in row.items() if value != ""}
    errors: list[tuple[str, str]] = []
    if kind == "gateways":
        if "tags" in data:
            data["tags"] = [tag.strip() for tag in data["tags"].split(";") if tag.strip()]
        if "site" in data:
            from .selectors import sites_visible_to

            site = sites_visible_to(user).filter(organization__slug=data.get("organization"), name=data["site"]).first()
            if site is None:
                errors.append(("site", f"No site named '{data['site']}' in organization '{data.get('organization')}'."))
            else:
                data["site"] = site.pk
    return data, errors


def import_csv(*, kind: str, text: str, user: Any, ip: str | None = None) -> ImportResult:
    """Import sites or gateways from CSV: every row is validated first, and one bad row imports nothing."""
    from .api.serializers import GatewaySerializer, SiteSerializer

    serializer_class = {"sites": SiteSerializer, "gateways": GatewaySerializer}[kind]
    rows = read_rows(kind, text, max_rows=settings.INVENTORY_IMPORT_MAX_ROWS)
    context = {"request": _UserOnlyRequest(user)}
    errors: list[RowError] = []
    validated: list[dict[str, Any]] = []
    seen_keys: dict[tuple[str, ...], int] = {}
    for line, row in rows:
        data, row_errors = _row_input(kind, row, user)
        errors += [RowError(line, field, message) for field, message in row_errors]
        key = (row.get("serial", ""),) if kind == "gateways" else (row.get("organization", ""), row.get("name", ""))
        if key in seen_keys:
            errors.append(
                RowError(
                    line,
                    "serial" if kind == "gateways" else "name",
                    f"Duplicate of line {seen_keys[key]} in this file.",
                )
            )
        seen_keys.setdefault(key, line)
        serializer = serializer_class(data=data, context=context)
        if not serializer.is_valid():
            for field, messages in serializer.errors.items():
                errors += [RowError(line, field, str(message)) for message in messages]
        elif not row_errors:
            validated.append(serializer.validated_data)
    if errors:
        raise CsvFormatError(errors)
    model = Gateway if kind == "gateways" else Site
    with transaction.atomic():
        for data in validated:
            create_object(model, data=data, actor=user, ip=ip)
        record(
            action=f"{kind}.import",
            user=user,
            ip=ip,
            detail={"created": len(validated)},
            organization=validated[0]["organization"] if len({d["organization"] for d in validated}) == 1 else None,
        )
    return ImportResult(kind=kind, created=len(validated))


class _UserOnlyRequest:
    """Serializers scope their related fields by the requesting user; imports run outside a request."""

    def __init__(self, user: Any) -> None:
        self.user = user


@transaction.atomic
def report_gateway_attributes(*, gateway: Gateway, attributes: dict[str, Any]) -> GatewayAttributeChange | None:
    """Store what a gateway reports about itself, keeping a history of what changed and when."""
    previous = gateway.attributes or {}
    changes = {
        key: [previous.get(key), attributes.get(key)]
        for key in sorted(set(previous) | set(attributes))
        if previous.get(key) != attributes.get(key)
    }
    gateway.last_seen = timezone.now()
    update_fields = ["last_seen"]
    if "firmware_version" in attributes and isinstance(attributes["firmware_version"], str):
        gateway.firmware_version = attributes["firmware_version"][:64]
        update_fields.append("firmware_version")
    if not changes:
        gateway.save(update_fields=update_fields)
        return None
    gateway.attributes = attributes
    gateway.save(update_fields=[*update_fields, "attributes", "updated"])
    record(
        action="gateway.report_attributes",
        target=gateway,
        gateway=gateway,
        before={k: old for k, (old, _) in changes.items()},
        after={k: new for k, (_, new) in changes.items()},
    )
    return GatewayAttributeChange.objects.create(
        gateway=gateway, source=GatewayAttributeChange.Source.GATEWAY, changes=changes
    )


def activate_gateway(*, gateway: Gateway, user: Any = None, ip: str | None = None) -> Gateway:
    """A registered gateway becomes active when it first proves its identity (or an operator says so)."""
    if gateway.status == Gateway.Status.ACTIVE:
        return gateway
    if gateway.status == Gateway.Status.DECOMMISSIONED:
        raise DomainError(
            f"Gateway {gateway.serial} is decommissioned; it cannot become active again.", code="decommissioned"
        )
    with transaction.atomic():
        gateway.status = Gateway.Status.ACTIVE
        gateway.save(update_fields=["status", "updated"])
        record(
            action="gateway.activate",
            target=gateway,
            user=user,
            gateway=None if user else gateway,
            ip=ip,
            before={"status": Gateway.Status.REGISTERED},
            after={"status": Gateway.Status.ACTIVE},
        )
    return gateway


def create_organization(*, name: str, slug: str, kind: str, actor: Actor, ip: str | None = None) -> Organization:
    """A new tenant. Only superusers create organizations (the first one on a fresh installation)."""
    authorize_superuser(actor, "create organizations")
    try:
        with transaction.atomic():
            return create_audited(Organization, data={"name": name, "slug": slug, "kind": kind}, user=actor, ip=ip)
    except ValidationError as e:
        raise DomainError("; ".join(f"{field}: {' '.join(errors)}" for field, errors in e.message_dict.items())) from e
