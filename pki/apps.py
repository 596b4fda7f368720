from __future__ import annotations

from django.apps import AppConfig


class PkiConfig(AppConfig):
    name = "pki"
    verbose_name = "PKI"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pki import checks  # noqa: F401  (registers the deploy check)
