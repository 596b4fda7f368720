from __future__ import annotations

from django.apps import AppConfig


class PkiConfig(AppConfig):
    name = "pki"
    verbose_name = "PKI"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fleet.inventory.panels import register_gateway_panel
        from pki import checks  # noqa: F401  (registers the deploy check)
        from pki.views import gateway_certificates_panel

        register_gateway_panel(gateway_certificates_panel)
