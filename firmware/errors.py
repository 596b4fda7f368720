"""Domain errors of the firmware app; the API turns each into a 4xx with its message."""

from __future__ import annotations

from fleet.core.errors import DomainError


class FirmwareError(DomainError):
    """Base class of the firmware app's refusals; `code` is the stable machine-readable reason."""


class ArtifactRejectedError(FirmwareError):
    """The uploaded bundle does not match its declaration or its manifest."""

    code = "artifact_rejected"


class ArtifactExistsError(FirmwareError):
    """An artifact with this name and version exists; artifacts are immutable."""

    code = "artifact_exists"
    status_code = 409


class IncompatibleArtifactError(FirmwareError):
    code = "incompatible"


class ArtifactNotReleasedError(FirmwareError):
    """The artifact is not yet in the signed firmware role (release signatures pending)."""

    code = "not_released"
    status_code = 409


class ConfigValuesInvalidError(FirmwareError):
    code = "config_invalid"
