"""Reads of the firmware app; tenancy is decided here, through fleet.accounts."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_visible_to, organizations_where

from .models import Artifact, Assignment, ConfigTemplate, ConfigValues, DeviceBundle


def artifacts_visible_to(user: Any) -> QuerySet[Artifact]:
    return Artifact.objects.filter(organization__in=organizations_visible_to(user)).select_related(
        "organization", "blob"
    )


def organizations_for_artifacts(user: Any) -> Any:
    return organizations_where(user, Capability.MANAGE_ARTIFACTS)


def assignments_visible_to(user: Any) -> QuerySet[Assignment]:
    return Assignment.objects.filter(gateway__organization__in=organizations_visible_to(user)).select_related(
        "gateway", "artifact", "bundle"
    )


def device_bundles_visible_to(user: Any) -> QuerySet[DeviceBundle]:
    return DeviceBundle.objects.filter(gateway__organization__in=organizations_visible_to(user)).select_related(
        "gateway", "blob"
    )


def config_templates_visible_to(user: Any) -> QuerySet[ConfigTemplate]:
    return ConfigTemplate.objects.filter(organization__in=organizations_visible_to(user))


def config_values_visible_to(user: Any) -> QuerySet[ConfigValues]:
    return ConfigValues.objects.filter(template__organization__in=organizations_visible_to(user))


def released_target_paths() -> set[str]:
    """Target paths signed into the firmware role (empty before `tuf_init`)."""
    from .repo import get_repository
    from .tuf.layout import FIRMWARE

    repo = get_repository()
    return set(repo.load(FIRMWARE).signed.targets) if repo.is_initialized else set()


def unreleased(artifacts: list[Artifact]) -> list[Artifact]:
    """Those of `artifacts` not signed into the firmware role yet (release signatures pending):
    a deployment of one pauses at its first assignment until the release is imported."""
    released = released_target_paths()
    return [artifact for artifact in artifacts if artifact.target_path not in released]
