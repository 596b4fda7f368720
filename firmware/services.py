"""State changes of the firmware app: artifacts, assignments, device bundles and publishing.

Every write marks the hash bins it touches as pending and asks for a publish after the commit;
`publish()` is the only code that signs and writes the repository.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import jsonschema
from django.db import transaction
from django.db.models import F, Max
from django.template import Context, Engine
from securesystemslib.formats import encode_canonical
from tuf.api.metadata import TargetFile

from fleet.audit.services import record, snapshot
from fleet.inventory.models import Gateway, Organization

from . import bundles, conf, storage
from .errors import (
    ArtifactExistsError,
    ArtifactNotReleasedError,
    ArtifactRejectedError,
    ConfigValuesInvalidError,
    FirmwareError,
    IncompatibleArtifactError,
)
from .locks import publisher_lock
from .models import (
    Artifact,
    ArtifactType,
    Assignment,
    ConfigTemplate,
    ConfigValues,
    DeviceBundle,
    DeviceTarget,
    PendingBin,
    UpdateChannel,
)
from .repo import get_repository, license_signer
from .tuf.layout import FIRMWARE, device_target_path
from .tuf.repository import PublishResult

logger = logging.getLogger(__name__)

ASSIGNMENT_FORMAT = "gridfleet-assignment/1"
LICENSE_FORMAT = "gridfleet-license/1"
# Superseded snapshot/bin files stay this long for clients that started a refresh before.
PRUNE_GRACE = timedelta(hours=1)
# Semantic Versioning 2.0.0, the regular expression suggested by semver.org.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


# ---------------------------------------------------------------- publishing


def _schedule_publish() -> None:
    from .tasks import publish_repository

    transaction.on_commit(publish_repository.delay)


def _mark_pending(bin_names: set[str]) -> None:
    PendingBin.objects.bulk_create([PendingBin(bin_name=name) for name in sorted(bin_names) if name])
    if bin_names:
        _schedule_publish()


def _target_file(path: str, sha256: str, length: int, custom: dict[str, Any] | None = None) -> TargetFile:
    return TargetFile(
        length=length,
        hashes={"sha256": sha256},
        path=path,
        unrecognized_fields={"custom": custom} if custom else None,
    )


def firmware_targets() -> dict[str, TargetFile]:
    """The firmware role's content: every uploaded artifact, shared by all gateways that run it."""
    return {
        a.target_path: _target_file(
            a.target_path,
            a.blob_id,
            a.blob.size,
            {"type": a.type, "name": a.name, "version": a.version, "hardware_models": a.hardware_models},
        )
        for a in Artifact.objects.select_related("organization", "blob")
    }


def publish() -> PublishResult | None:
    """Sign and publish the pending bins and the firmware role (no-op before `tuf_init`)."""
    repo = get_repository()
    if not repo.is_initialized:
        logger.warning("TUF repository not initialised; run manage.py tuf_init. Nothing published.")
        return None
    with publisher_lock():
        # Exactly the rows read here are consumed: a row committed meanwhile (even with a lower id)
        # was not seen, so it stays for the next publish.
        pending = list(PendingBin.objects.values_list("id", "bin_name"))
        names = {name for _, name in pending}
        bins: dict[str, list[TargetFile]] = {name: [] for name in names}
        rows = DeviceTarget.objects.filter(bin_name__in=names).select_related("bundle__blob")
        for row in rows.iterator(chunk_size=2000):
            bins[row.bin_name].append(_target_file(row.path, row.bundle.blob_id, row.bundle.blob.size))
        result = repo.publish(bins=bins, firmware=firmware_targets())
        ids = [pk for pk, _ in pending]
        for i in range(0, len(ids), 5000):
            PendingBin.objects.filter(id__in=ids[i : i + 5000]).delete()
    if result.changed:
        record(action="firmware.repository.publish", detail=_result_detail(result))
    return result


def resign() -> PublishResult | None:
    """Re-sign roles close to expiry (the periodic task)."""
    repo = get_repository()
    if not repo.is_initialized:
        return None
    with publisher_lock():
        result = repo.resign_expiring()
        pruned = repo.prune_superseded(PRUNE_GRACE)
    if pruned:
        logger.info("TUF: removed %d superseded metadata files", pruned)
    for warning in result.warnings:
        logger.warning("TUF: %s", warning)
    if result.changed:
        record(action="firmware.repository.resign", detail=_result_detail(result))
    return result


def _result_detail(result: PublishResult) -> dict[str, Any]:
    return {
        "bins": len(result.bins),
        "offline_roles": result.offline_roles,
        "snapshot": result.snapshot_version,
        "timestamp": result.timestamp_version,
        "firmware_staged": result.firmware_staged,
        "warnings": result.warnings,
    }


def rebin_all() -> int:
    """Recompute every device target's bin (after the repository is initialised) and mark them."""
    repo = get_repository()
    names = set()
    rows = list(DeviceTarget.objects.all())
    for row in rows:
        row.bin_name = repo.bin_for(row.path)
        names.add(row.bin_name)
    DeviceTarget.objects.bulk_update(rows, ["bin_name"], batch_size=2000)
    _mark_pending(names)
    return len(rows)


# ----------------------------------------------------------------- artifacts


def upload_artifact(
    *,
    organization: Organization,
    type: str,
    name: str,
    version: str,
    fileobj: IO[bytes],
    hardware_models: list[str] | None = None,
    release_notes: str = "",
    declared_size: int | None = None,
    declared_sha256: str | None = None,
    actor: Any,
    ip: str | None = None,
) -> Artifact:
    if type not in ArtifactType.values:
        raise ArtifactRejectedError(f"unknown type {type!r}; use one of {', '.join(ArtifactType.values)}")
    if not SEMVER.match(version):
        raise ArtifactRejectedError(f"version {version!r} is not a semantic version (e.g. 2.1.0)")
    fileobj.seek(0, 2)
    size, limit = fileobj.tell(), int(conf.get("GRIDFLEET_ARTIFACT_MAX_BYTES"))
    fileobj.seek(0)
    if size > limit:
        raise ArtifactRejectedError(f"the upload is {size} bytes; the limit is {limit} (GRIDFLEET_ARTIFACT_MAX_BYTES)")
    try:
        checked = bundles.check_bundle(
            fileobj,
            declared_type=type,
            declared_name=name,
            declared_version=version,
            declared_size=declared_size,
            declared_sha256=declared_sha256,
        )
    except bundles.BundleError as e:
        record(
            action="firmware.artifact.rejected",
            user=actor,
            organization=organization,
            ip=ip,
            detail={"name": name, "version": version, "reason": str(e)},
        )
        raise ArtifactRejectedError(str(e)) from e
    manifest_models = checked.manifest.get("hardware_models")
    if hardware_models and manifest_models is not None and sorted(hardware_models) != sorted(manifest_models):
        raise ArtifactRejectedError(
            f"declared hardware models {sorted(hardware_models)} differ from the manifest's {sorted(manifest_models)}"
        )
    models_ = sorted(hardware_models or manifest_models or [])
    if not models_:
        raise ArtifactRejectedError("name at least one compatible hardware model (form field or manifest)")
    with transaction.atomic():
        existing = Artifact.objects.filter(organization=organization, name=name, version=version).first()
        if existing is not None:
            raise ArtifactExistsError(
                f"{name} {version} already exists (sha256 {existing.blob_id}); artifacts are immutable, "
                "upload a new version"
            )
        blob = storage.store_file(fileobj, sha256=checked.sha256)
        artifact = Artifact.objects.create(
            organization=organization,
            type=type,
            name=name,
            version=version,
            hardware_models=models_,
            release_notes=release_notes,
            manifest=checked.manifest,
            blob=blob,
            uploaded_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record(action="firmware.artifact.upload", target=artifact, user=actor, ip=ip, after=snapshot(artifact))
        _schedule_publish()
    return artifact


# ---------------------------------------------------------- update channels


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
    issued_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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


def _released_paths() -> set[str]:
    repo = get_repository()
    return set(repo.load(FIRMWARE).signed.targets) if repo.is_initialized else set()


def assign(
    *,
    gateway: Gateway,
    artifact_type: str,
    artifact: Artifact | None = None,
    version: str | None = None,
    deployment: str = "",
    install: dict[str, Any] | None = None,
    actor: Any = None,
    ip: str | None = None,
) -> Assignment:
    """Make `gateway` run `artifact` (or the artifact of this type and `version` in its
    organization) and mark its bins for publishing. Refuses incompatible or unreleased artifacts."""
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
    if artifact.target_path not in _released_paths():
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
    actor: Any = None,
    ip: str | None = None,
) -> int:
    """`assign` for many gateways at once (a rollout phase): batched writes, one audit entry.
    Refuses the whole batch if any gateway is incompatible or in another organization."""
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
    *, gateway: Gateway, artifact_type: str, values: dict[str, Any], actor: Any, ip: str | None
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


def unassign(*, gateway: Gateway, artifact_type: str, actor: Any = None, ip: str | None = None) -> None:
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


# ------------------------------------------------------------- device bundles


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
    actor: Any,
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


def build_config(
    *, gateway: Gateway, template: ConfigTemplate, actor: Any = None, ip: str | None = None
) -> DeviceBundle:
    """Render `template` with the gateway's validated values into a new config bundle and assign it."""
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
    actor: Any = None,
    ip: str | None = None,
) -> DeviceBundle:
    """Sign a license for one gateway with the server's license key and assign it."""
    if valid_days < 1:
        raise FirmwareError("a license must be valid for at least one day")
    channel = ensure_channel(gateway=gateway)
    now = datetime.now(UTC).replace(microsecond=0)
    signed = {
        "format": LICENSE_FORMAT,
        "token": channel.token,
        "serial": gateway.serial,
        "version": _next_bundle_version(gateway, DeviceBundle.Kind.LICENSE),
        "not_before": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": (now + timedelta(days=valid_days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
    actor: Any,
    ip: str | None = None,
) -> ConfigTemplate:
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
    actor: Any,
    ip: str | None = None,
) -> ConfigValues:
    """Store site- or gateway-level values (validated when a bundle is built from the merge)."""
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


def reissue_channel_token(*, gateway: Gateway, actor: Any, ip: str | None = None) -> UpdateChannel:
    """Give the gateway a new opaque token (e.g. its old one leaked): its targets move to the new
    path and the old path answers 404. The gateway learns the token from /gw/v1/updates/channel."""
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
