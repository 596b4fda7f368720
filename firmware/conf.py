"""Firmware / TUF settings with their defaults.

Values come from fleet.settings (which reads the environment); the defaults here apply when a
setting is absent. See docs/tuf-repository.md for what each one changes.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Where the repository (metadata/, staging/, keys/, index.json) lives.
    "GRIDFLEET_TUF_DIR": "",
    # Passphrase of the encrypted online key files; empty: a random one kept next to the keys.
    "GRIDFLEET_TUF_KEY_PASSPHRASE": "",
    # JSON {"timestamp"|"snapshot"|"bins": {"uri": "gcpkms:...", "public_key": {...}}}: online keys
    # held by a KMS/HSM instead of local encrypted files.
    "GRIDFLEET_TUF_ONLINE_KEYS": "",
    # Base URL gateways use for /tuf/ (e.g. a CDN); empty: the URL of the request.
    "GRIDFLEET_TUF_PUBLIC_URL": "",
    # Largest accepted artifact upload.
    "GRIDFLEET_ARTIFACT_MAX_BYTES": 2 * 1024**3,
}


def get(name: str) -> Any:
    return getattr(settings, name, os.environ.get(name) or DEFAULTS[name])


def tuf_dir() -> Path:
    configured = get("GRIDFLEET_TUF_DIR")
    return Path(configured) if configured else Path(settings.GRIDFLEET_VAR_DIR) / "tuf"


def key_passphrase() -> str:
    if configured := get("GRIDFLEET_TUF_KEY_PASSPHRASE"):
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
    value = get("GRIDFLEET_TUF_ONLINE_KEYS")
    if not value:
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)
