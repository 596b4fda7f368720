from __future__ import annotations

from django.apps import AppConfig


class PkiConfig(AppConfig):
    name = "pki"
    verbose_name = "PKI"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fleet.inventory.filtersets import register_gateway_lookup
        from fleet.inventory.panels import register_gateway_panel
        from pki import checks  # noqa: F401  (registers the deploy check)
        from pki.selectors import gateway_ids_by_fingerprint
        from pki.views import gateway_certificates_panel

        register_gateway_panel(gateway_certificates_panel)
        # Gateway search finds a gateway by its certificate's LFDI or SFDI.
        register_gateway_lookup(gateway_ids_by_fingerprint)
