"""`manage.py check --deploy`: warn when online TUF keys are protected only by a passphrase on the same disk."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register

from firmware import conf


@register(Tags.security, deploy=True)
def tuf_key_passphrase_configured(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.GRIDFLEET_TUF_KEY_PASSPHRASE or conf.configured_online_keys():
        return []
    return [
        Warning(
            "GRIDFLEET_TUF_KEY_PASSPHRASE is not set: the online TUF keys are encrypted with a passphrase kept "
            "next to them. Set it from a secret store, or use KMS/HSM signers (GRIDFLEET_TUF_ONLINE_KEYS).",
            id="firmware.W001",
        )
    ]
