"""PKI settings with their defaults, and the key-encryption key (KEK) that protects CA keys.

Values come from fleet.settings (which reads the environment); the defaults here apply when
the setting is absent.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "GRIDFLEET_PKI_KEK": "",
    "GRIDFLEET_PKI_DEVICE_CERT_DAYS": 365,
    "GRIDFLEET_PKI_ROOT_CA_DAYS": 20 * 365,
    "GRIDFLEET_PKI_ISSUING_CA_DAYS": 10 * 365,
    "GRIDFLEET_PKI_ENROLLMENT_TOKEN_HOURS": 7 * 24,
    "GRIDFLEET_PKI_REQUIRE_ACCEPTANCE": False,
    "GRIDFLEET_PKI_ACCESS_TOKEN_TTL": 600,
    "GRIDFLEET_PKI_AUTH_MAX_SKEW": 120,
    "GRIDFLEET_PKI_PUBLIC_URL": "",
    "GRIDFLEET_PKI_CRL_VALIDITY_HOURS": 24,
    # Header in which a TLS terminator in TRUSTED_PROXIES passes the verified client certificate
    # (URL-encoded PEM, nginx `$ssl_client_escaped_cert`); empty disables mutual TLS.
    "GRIDFLEET_PKI_CLIENT_CERT_HEADER": "",
}

KEK_MIN_LENGTH = 32
KEK_FILE_NAME = "pki-kek"


def get(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


def kek() -> bytes:
    """The key-encryption key for CA private keys.

    Production must set GRIDFLEET_PKI_KEK (32+ characters, e.g. `openssl rand -base64 48`), kept
    outside the database and its backups. Only with DEBUG on (the embedded default) does Gridfleet
    generate one under GRIDFLEET_VAR_DIR so `make demo` works without setup; it logs that it did.
    """
    value: str = get("GRIDFLEET_PKI_KEK")
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
