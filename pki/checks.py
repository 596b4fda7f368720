"""`manage.py check --deploy` refuses a production configuration without a key-encryption key."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from pki import conf


@register(Tags.security, deploy=True)
def kek_configured(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    value = settings.GRIDFLEET_PKI_KEK
    if not value and not settings.DEBUG:
        return [Error("GRIDFLEET_PKI_KEK is not set; CA keys cannot be decrypted.", id="pki.E001")]
    if value and len(value) < conf.KEK_MIN_LENGTH:
        return [Error(f"GRIDFLEET_PKI_KEK is shorter than {conf.KEK_MIN_LENGTH} characters.", id="pki.E002")]
    return []
