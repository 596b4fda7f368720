"""State changes of the firmware app: artifacts."""

from __future__ import annotations

from typing import IO

from django.conf import settings
from django.db import transaction

from firmware import bundles, storage
from firmware.errors import (
    ArtifactExistsError,
    ArtifactRejectedError,
)
from firmware.models import (
    Artifact,
    ArtifactType,
)
from fleet.accounts.authorization import Actor, authorize, person
from fleet.accounts.roles import Capability
from fleet.audit.services import record, snapshot
from fleet.inventory.models import Organization

from ._common import SEMVER
from .publishing import _schedule_publish


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
    actor: Actor,
    ip: str | None = None,
) -> Artifact:
    authorize(actor, Capability.MANAGE_ARTIFACTS, organization)
    if type not in ArtifactType.values:
        raise ArtifactRejectedError(f"unknown type {type!r}; use one of {', '.join(ArtifactType.values)}")
    if not SEMVER.match(version):
        raise ArtifactRejectedError(f"version {version!r} is not a semantic version (e.g. 2.1.0)")
    fileobj.seek(0, 2)
    size, limit = fileobj.tell(), settings.GRIDFLEET_ARTIFACT_MAX_BYTES
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
            uploaded_by=person(actor),
        )
        record(action="firmware.artifact.upload", target=artifact, user=actor, ip=ip, after=snapshot(artifact))
        _schedule_publish()
    return artifact
