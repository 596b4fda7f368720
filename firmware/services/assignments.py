"""State changes of the firmware app: update channels."""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import jsonschema
from django.db import transaction
from django.db.models import F

from firmware import storage
from firmware.errors import (
    ArtifactNotReleasedError,
    FirmwareError,
    IncompatibleArtifactError,
)
from firmware.models import (
    Artifact,
    ArtifactType,
    Assignment,
    DeviceBundle,
    DeviceTarget,
    UpdateChannel,
)
from firmware.repo import get_repository
from firmware.selectors import released_target_paths
from firmware.tuf.layout import device_target_path
from fleet.accounts.authorization import Actor, authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record, snapshot
from fleet.core.timestamps import rfc3339
from fleet.inventory.models import Gateway

from ._common import ASSIGNMENT_FORMAT
from .publishing import _mark_pending


def ensure_channel(*, gateway: Gateway) -> UpdateChannel:
    return _ensure_channels([gateway])[gateway.pk]


def _ensure_channels(gateways: list[Gateway]) -> dict[int, UpdateChannel]:
    ids = [g.pk for g in gateways]
    have = set(UpdateChannel.objects.filter(gateway_id__in=ids).values_list("gateway_id", flat=True))
    UpdateChannel.objects.bulk_create(
        [UpdateChannel(gateway_id=i, token=secrets.token_hex(16)) for i in ids if i not in have],
        ignore_conflicts=True,
        batch_size=2000,
    )
    return {c.gateway_id: c for c in UpdateChannel.objects.filter(gateway_id__in=ids)}


def _entry(assignment: Assignment, channel: UpdateChannel) -> dict[str, Any]:
    if assignment.artifact is not None:
        artifact = assignment.artifact
        target, name, version, blob = artifact.target_path, artifact.name, artifact.version, artifact.blob
    else:
        bundle = assignment.bundle
        assert bundle is not None  # the check constraint: artifact or bundle
        target = device_target_path(channel.token, bundle.filename)
        name, version, blob = bundle.source.get("name", bundle.kind), str(bundle.version), bundle.blob
    return {
        "target": target,
        "name": name,
        "version": version,
        "length": blob.size,
        "sha256": blob.sha256,
        "deployment": assignment.deployment or None,
        "install": assignment.install,
    }


def _rebuild_device_targets(gateways: list[Gateway]) -> None:
    """Write a new assignment document per gateway and make its bin entries match its assignments."""
    _ensure_channels(gateways)
    bumped = UpdateChannel.objects.filter(gateway_id__in=[g.pk for g in gateways])
    bumped.update(sequence=F("sequence") + 1)
    channels = {c.gateway_id: c for c in bumped}
    assignments: dict[int, dict[str, Assignment]] = defaultdict(dict)
    for a in Assignment.objects.filter(gateway_id__in=channels).select_related(
        "artifact__organization", "artifact__blob", "bundle__blob"
    ):
        assignments[a.gateway_id][a.artifact_type] = a
    issued_at = rfc3339(datetime.now(UTC), timespec="seconds")
    documents = []
    for gateway_id, channel in channels.items():
        mine = assignments[gateway_id]
        document = {
            "format": ASSIGNMENT_FORMAT,
            "token": channel.token,
            "sequence": channel.sequence,
            "issued_at": issued_at,
            **{t: _entry(mine[t], channel) if t in mine else None for t in ArtifactType.values},
        }
        documents.append(json.dumps(document, indent=2, sort_keys=True).encode())
    blobs = storage.store_many(documents)
    new_bundles = DeviceBundle.objects.bulk_create(
        [
            DeviceBundle(
                gateway_id=gateway_id,
                kind=DeviceBundle.Kind.ASSIGNMENT,
                version=channel.sequence,
                filename="assignment.json",
                blob=blob,
            )
            for (gateway_id, channel), blob in zip(channels.items(), blobs, strict=True)
        ],
        batch_size=2000,
    )
    wanted: dict[str, DeviceBundle] = {}
    for bundle in new_bundles:
        token = channels[bundle.gateway_id].token
        wanted[device_target_path(token, "assignment.json")] = bundle
        for a in assignments[bundle.gateway_id].values():
            if a.bundle is not None:
                wanted[device_target_path(token, a.bundle.filename)] = a.bundle
    repo = get_repository()
    bin_for = repo.bin_for if repo.is_initialized else (lambda _path: "")
    touched: set[str] = set()
    stale = DeviceTarget.objects.filter(gateway_id__in=channels).exclude(path__in=wanted)
    touched.update(stale.values_list("bin_name", flat=True))
    stale.delete()
    rows = [
        DeviceTarget(path=path, gateway_id=bundle.gateway_id, bundle=bundle, bin_name=bin_for(path))
        for path, bundle in wanted.items()
    ]
    DeviceTarget.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["path"], update_fields=["bundle", "bin_name"], batch_size=2000
    )
    touched.update(row.bin_name for row in rows)
    _mark_pending(touched)


def assign(
    *,
    gateway: Gateway,
    artifact_type: str,
    artifact: Artifact | None = None,
    version: str | None = None,
    deployment: str = "",
    install: dict[str, Any] | None = None,
    actor: Actor,
    ip: str | None = None,
) -> Assignment:
    """Make `gateway` run `artifact` (or the artifact of this type and `version` in its
    organization) and mark its bins for publishing. Refuses incompatible or unreleased artifacts."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, gateway.organization_id)
    if artifact is None:
        if version is None:
            raise FirmwareError("name an artifact or a version to assign")
        candidates = list(
            Artifact.objects.filter(organization=gateway.organization, type=artifact_type, version=version)
        )
        if len(candidates) != 1:
            raise FirmwareError(
                f"{len(candidates)} {artifact_type} artifacts have version {version}; name the artifact"
            )
        artifact = candidates[0]
    if artifact.type != artifact_type:
        raise FirmwareError(f"{artifact} is a {artifact.type}, not a {artifact_type}")
    _check_install(install)
    _check_assignable(artifact, [gateway])
    return _set_assignment(
        gateway=gateway,
        artifact_type=artifact_type,
        values={"artifact": artifact, "bundle": None, "deployment": deployment, "install": install},
        actor=actor,
        ip=ip,
    )


# The `install` object of an assignment entry (docs/protocol/updates.md section 4).
INSTALL_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "not_before": {"type": ["string", "null"], "format": "date-time"},
        "window": {
            "type": ["object", "null"],
            "required": ["start", "end", "timezone"],
            "additionalProperties": False,
            "properties": {
                "start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                "end": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                "timezone": {"type": "string", "minLength": 1},
            },
        },
        "sun_down": {"type": "boolean"},
        # The site's position, given with sun_down so the agent can compute sunset and sunrise.
        "location": {
            "type": ["object", "null"],
            "required": ["latitude", "longitude"],
            "properties": {
                "latitude": {"type": ["number", "string"]},
                "longitude": {"type": ["number", "string"]},
            },
        },
    },
}


def _check_install(install: dict[str, Any] | None) -> None:
    try:
        jsonschema.validate(install, INSTALL_SCHEMA)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise FirmwareError(f"install conditions at {where}: {e.message}") from e


def _check_assignable(artifact: Artifact, gateways: list[Gateway]) -> None:
    foreign = [g.serial for g in gateways if g.organization_id != artifact.organization_id]
    if foreign:
        raise FirmwareError(f"{artifact} belongs to another organization than {', '.join(foreign[:5])}")
    incompatible = [g for g in gateways if not artifact.is_compatible_with(g.hardware_model)]
    if incompatible:
        models_ = sorted({g.hardware_model for g in incompatible})
        raise IncompatibleArtifactError(
            f"{artifact} supports {', '.join(artifact.hardware_models)}, not {', '.join(repr(m) for m in models_)}"
            + (f" ({len(incompatible)} gateways)" if len(gateways) > 1 else "")
        )
    if artifact.target_path not in released_target_paths():
        raise ArtifactNotReleasedError(
            f"{artifact} is not signed into the firmware role yet (release signatures pending)"
        )


ASSIGN_BATCH = 1000


def assign_many(
    *,
    gateways: Iterable[Gateway],
    artifact: Artifact,
    deployment: str = "",
    install: dict[str, Any] | None = None,
    actor: Actor,
    ip: str | None = None,
) -> int:
    """`assign` for many gateways at once (a rollout phase): batched writes, one audit entry.
    Refuses the whole batch if any gateway is incompatible or in another organization."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, artifact.organization_id)
    gateways = list(gateways)
    _check_install(install)
    _check_assignable(artifact, gateways)
    with transaction.atomic():
        for i in range(0, len(gateways), ASSIGN_BATCH):
            batch = gateways[i : i + ASSIGN_BATCH]
            Assignment.objects.bulk_create(
                [
                    Assignment(
                        gateway=g,
                        artifact_type=artifact.type,
                        artifact=artifact,
                        deployment=deployment,
                        install=install,
                    )
                    for g in batch
                ],
                update_conflicts=True,
                unique_fields=["gateway", "artifact_type"],
                update_fields=["artifact", "bundle", "deployment", "install", "updated"],
            )
            _rebuild_device_targets(batch)
        record(
            action="firmware.assignment.bulk_set",
            target=artifact,
            user=actor,
            ip=ip,
            detail={
                "artifact_type": artifact.type,
                "version": artifact.version,
                "deployment": deployment,
                "gateways": len(gateways),
            },
        )
    return len(gateways)


def _set_assignment(
    *, gateway: Gateway, artifact_type: str, values: dict[str, Any], actor: Actor, ip: str | None
) -> Assignment:
    with transaction.atomic():
        existing = Assignment.objects.filter(gateway=gateway, artifact_type=artifact_type).first()
        before = snapshot(existing) if existing else None
        assignment, _ = Assignment.objects.update_or_create(
            gateway=gateway, artifact_type=artifact_type, defaults=values
        )
        _rebuild_device_targets([gateway])
        record(
            action="firmware.assignment.set",
            target=assignment,
            user=actor,
            ip=ip,
            before=before,
            after=snapshot(assignment),
        )
    return assignment


def unassign(*, gateway: Gateway, artifact_type: str, actor: Actor, ip: str | None = None) -> None:
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, gateway.organization_id)
    with transaction.atomic():
        existing = Assignment.objects.filter(gateway=gateway, artifact_type=artifact_type).first()
        if existing is None:
            return
        before = snapshot(existing)
        existing.delete()
        _rebuild_device_targets([gateway])
        record(
            action="firmware.assignment.clear",
            organization=gateway.organization,
            user=actor,
            ip=ip,
            before=before,
            detail={"gateway": gateway.serial, "artifact_type": artifact_type},
        )
