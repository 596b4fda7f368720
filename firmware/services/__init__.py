"""State changes of the firmware app: artifacts, assignments, device bundles and publishing.

Every write marks the hash bins it touches as pending and asks for a publish after the commit;
`publish()` is the only code that signs and writes the repository.
"""

from ._common import ASSIGNMENT_FORMAT, LICENSE_FORMAT, PRUNE_GRACE, SEMVER
from .artifacts import upload_artifact
from .assignments import ASSIGN_BATCH, INSTALL_SCHEMA, assign, assign_many, ensure_channel, unassign
from .device_bundles import (
    build_config,
    config_values_for,
    create_config_template,
    issue_license,
    reissue_channel_token,
    set_config_values,
    sign_license_document,
)
from .publishing import firmware_targets, publish, rebin_all, resign

__all__ = [
    "ASSIGNMENT_FORMAT",
    "ASSIGN_BATCH",
    "INSTALL_SCHEMA",
    "LICENSE_FORMAT",
    "PRUNE_GRACE",
    "SEMVER",
    "assign",
    "assign_many",
    "build_config",
    "config_values_for",
    "create_config_template",
    "ensure_channel",
    "firmware_targets",
    "issue_license",
    "publish",
    "rebin_all",
    "reissue_channel_token",
    "resign",
    "set_config_values",
    "sign_license_document",
    "unassign",
    "upload_artifact",
]
