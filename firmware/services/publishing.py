"""State changes of the firmware app: publishing."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from tuf.api.metadata import TargetFile

from firmware.locks import publisher_lock
from firmware.models import (
    Artifact,
    DeviceTarget,
    PendingBin,
)
from firmware.repo import get_repository
from firmware.tuf.repository import PublishResult
from fleet.audit.services import record

from ._common import PRUNE_GRACE

logger = logging.getLogger(__name__)


def _schedule_publish() -> None:
    from firmware.tasks import publish_repository

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
