"""State changes of the firmware app: device bundles."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
from django.db import transaction
from django.db.models import Max
from django.template import Context, Engine
from securesystemslib.formats import encode_canonical

from firmware import bundles, storage
from firmware.errors import (
    ConfigValuesInvalidError,
    FirmwareError,
)
from firmware.models import (
    ConfigTemplate,
    ConfigValues,
    DeviceBundle,
    UpdateChannel,
)
from firmware.repo import license_signer
from fleet.accounts.authorization import Actor, authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record, snapshot
from fleet.core.timestamps import rfc3339
from fleet.inventory.models import Gateway, Organization

from ._common import LICENSE_FORMAT
from .assignments import _rebuild_device_targets, _set_assignment, ensure_channel


def _next_bundle_version(gateway: Gateway, kind: str) -> int:
    last = DeviceBundle.objects.filter(gateway=gateway, kind=kind).aggregate(v=Max("version"))["v"]
    return (last or 0) + 1


def _assign_bundle(
    *,
    gateway: Gateway,
    kind: str,
    name: str,
    files: dict[str, bytes],
    source: dict[str, Any],
    actor: Actor,
    ip: str | None,
) -> DeviceBundle:
    version = _next_bundle_version(gateway, kind)
    data = bundles.build_bundle(type=kind, name=name, version=str(version), files=files)
    bundle = DeviceBundle.objects.create(
        gateway=gateway,
        kind=kind,
        version=version,
        filename=f"{kind}-{version}.tar",
        blob=storage.store_bytes(data),
        source={"name": name, **source},
    )
    _set_assignment(
        gateway=gateway,
        artifact_type=kind,
        values={"artifact": None, "bundle": bundle, "deployment": "", "install": None},
        actor=actor,
        ip=ip,
    )
    return bundle


def config_values_for(*, template: ConfigTemplate, gateway: Gateway) -> dict[str, Any]:
    """Site values overlaid with gateway values (gateway wins, key by key at the top level)."""
    values: dict[str, Any] = {}
    for level in (
        ConfigValues.objects.filter(template=template, site=gateway.site_id).first() if gateway.site_id else None,
        ConfigValues.objects.filter(template=template, gateway=gateway).first(),
    ):
        if level is not None:
            values.update(level.values)
    return values


def build_config(*, gateway: Gateway, template: ConfigTemplate, actor: Actor, ip: str | None = None) -> DeviceBundle:
    """Render `template` with the gateway's validated values into a new config bundle and assign it."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, gateway.organization_id)
    if template.organization_id != gateway.organization_id:
        raise FirmwareError(f"template {template} belongs to another organization than {gateway}")
    values = config_values_for(template=template, gateway=gateway)
    try:
        jsonschema.validate(values, template.schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigValuesInvalidError(f"values for {gateway} at {where}: {e.message}") from e
    engine = Engine(autoescape=False)
    context = {"values": values, "gateway": {"serial": gateway.serial, "hardware_model": gateway.hardware_model}}
    files = {"config.json": json.dumps(values, indent=2, sort_keys=True).encode()}
    for path, text in sorted(template.files.items()):
        files[f"files/{path}"] = engine.from_string(text).render(Context(context)).encode()
    with transaction.atomic():
        return _assign_bundle(
            gateway=gateway,
            kind=DeviceBundle.Kind.CONFIG,
            name=template.name,
            files=files,
            source={"template": template.pk, "values": values},
            actor=actor,
            ip=ip,
        )


def sign_license_document(signed: dict[str, Any]) -> dict[str, Any]:
    canonical = encode_canonical(signed)
    assert canonical is not None  # returns None only when writing to an output function
    signature = license_signer().sign(canonical.encode())
    return {"signed": signed, "signatures": [signature.to_dict()]}


def issue_license(
    *,
    gateway: Gateway,
    limits: dict[str, int],
    features: list[str],
    valid_days: int = 365,
    actor: Actor,
    ip: str | None = None,
) -> DeviceBundle:
    """Sign a license for one gateway with the server's license key and assign it."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, gateway.organization_id)
    if valid_days < 1:
        raise FirmwareError("a license must be valid for at least one day")
    channel = ensure_channel(gateway=gateway)
    now = datetime.now(UTC).replace(microsecond=0)
    signed = {
        "format": LICENSE_FORMAT,
        "token": channel.token,
        "serial": gateway.serial,
        "version": _next_bundle_version(gateway, DeviceBundle.Kind.LICENSE),
        "not_before": rfc3339(now, timespec="seconds"),
        "not_after": rfc3339(now + timedelta(days=valid_days), timespec="seconds"),
        "limits": limits,
        "features": sorted(features),
    }
    document = sign_license_document(signed)
    with transaction.atomic():
        return _assign_bundle(
            gateway=gateway,
            kind=DeviceBundle.Kind.LICENSE,
            name="license",
            files={"license.json": json.dumps(document, indent=2, sort_keys=True).encode()},
            source={"limits": limits, "features": sorted(features), "not_after": signed["not_after"]},
            actor=actor,
            ip=ip,
        )


def create_config_template(
    *,
    organization: Organization,
    name: str,
    schema: dict[str, Any],
    files: dict[str, str],
    actor: Actor,
    ip: str | None = None,
) -> ConfigTemplate:
    authorize(actor, Capability.MANAGE_ARTIFACTS, organization)
    with transaction.atomic():
        if ConfigTemplate.objects.filter(organization=organization, name=name).exists():
            raise FirmwareError(f"a config template named {name!r} already exists")
        template = ConfigTemplate.objects.create(organization=organization, name=name, schema=schema, files=files)
        record(action="firmware.config_template.create", target=template, user=actor, ip=ip, after=snapshot(template))
    return template


def set_config_values(
    *,
    template: ConfigTemplate,
    values: dict[str, Any],
    site: Any = None,
    gateway: Gateway | None = None,
    actor: Actor,
    ip: str | None = None,
) -> ConfigValues:
    """Store site- or gateway-level values (validated when a bundle is built from the merge)."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, template.organization_id)
    owner = site or gateway
    if owner is None or (site is not None and gateway is not None):
        raise FirmwareError("give either a site or a gateway")
    if owner.organization_id != template.organization_id:
        raise FirmwareError(f"{owner} belongs to another organization than template {template}")
    with transaction.atomic():
        existing = ConfigValues.objects.filter(template=template, site=site, gateway=gateway).first()
        before = snapshot(existing) if existing else None
        row, _ = ConfigValues.objects.update_or_create(
            template=template, site=site, gateway=gateway, defaults={"values": values}
        )
        record(action="firmware.config_values.set", target=row, user=actor, ip=ip, before=before, after=snapshot(row))
    return row


def reissue_channel_token(*, gateway: Gateway, actor: Actor, ip: str | None = None) -> UpdateChannel:
    """Give the gateway a new opaque token (e.g. its old one leaked): its targets move to the new
    path and the old path answers 404. The gateway learns the token from /gw/v1/updates/channel."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, gateway.organization_id)
    with transaction.atomic():
        channel = ensure_channel(gateway=gateway)
        old = channel.token
        channel.token = secrets.token_hex(16)
        channel.save(update_fields=["token"])
        _rebuild_device_targets([gateway])  # removes the old paths and marks their bins
        record(
            action="firmware.channel.reissue",
            target=channel,
            user=actor,
            ip=ip,
            detail={"gateway": gateway.serial, "old_token_prefix": old[:4]},
        )
    return channel
