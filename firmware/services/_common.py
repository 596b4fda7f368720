"""Constants and helpers shared by the services service modules."""

from __future__ import annotations

import re
from datetime import timedelta

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
