"""The key-encryption key (KEK) that protects the CA private keys.

The PKI's other settings are read from the environment once, with their defaults, in
fleet.settings; code reads them as `settings.GRIDFLEET_PKI_*`.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

KEK_MIN_LENGTH = 32
KEK_FILE_NAME = "pki-kek"


def kek() -> bytes:
    """The key-encryption key for CA private keys.

    Production must set GRIDFLEET_PKI_KEK (32+ characters, e.g. `openssl rand -base64 48`), kept
    outside the database and its backups. Only with DEBUG on (the embedded default) does Gridfleet
    generate one under GRIDFLEET_VAR_DIR so `make demo` works without setup; it logs that it did.
    """
    value = settings.GRIDFLEET_PKI_KEK
    if value:
        if len(value) < KEK_MIN_LENGTH:
            raise ImproperlyConfigured(f"GRIDFLEET_PKI_KEK must be at least {KEK_MIN_LENGTH} characters.")
        return value.encode()
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            "GRIDFLEET_PKI_KEK is not set. It encrypts the CA private keys; set it to 32+ random characters "
            "(e.g. `openssl rand -base64 48`) and keep it out of the database backups."
        )
    return _development_kek(Path(settings.GRIDFLEET_VAR_DIR) / KEK_FILE_NAME)


def _development_kek(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # generated earlier, or by a sibling process right now
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        logger.warning(
            "GRIDFLEET_PKI_KEK is not set: generated a development key-encryption key in %s (DEBUG only; "
            "production refuses to run without GRIDFLEET_PKI_KEK).",
            path,
        )
    return path.read_text().strip().encode()
