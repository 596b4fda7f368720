"""Where the TUF repository lives and the online keys' secrets, derived from the settings.

The settings themselves are read from the environment once, with their defaults, in
fleet.settings (`GRIDFLEET_TUF_*`, `GRIDFLEET_ARTIFACT_MAX_BYTES`); docs/tuf-repository.md says
what each one changes.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings


def tuf_dir() -> Path:
    configured = settings.GRIDFLEET_TUF_DIR
    return Path(configured) if configured else Path(settings.GRIDFLEET_VAR_DIR) / "tuf"


def key_passphrase() -> str:
    if configured := settings.GRIDFLEET_TUF_KEY_PASSPHRASE:
        return str(configured)
    path = tuf_dir() / "keys" / "passphrase"
    if not path.exists():
        from .tuf.keys import private_directory

        private_directory(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def configured_online_keys() -> dict[str, Any]:
    value = settings.GRIDFLEET_TUF_ONLINE_KEYS
    if not value:
        return {}
    keys: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return keys
