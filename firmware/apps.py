from __future__ import annotations

from django.apps import AppConfig


class FirmwareConfig(AppConfig):
    name = "firmware"
    verbose_name = "Firmware and updates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fleet.inventory.panels import register_gateway_panel

        from . import checks  # noqa: F401  (registers the deploy check)
        from .views import gateway_updates_panel

        register_gateway_panel(gateway_updates_panel)
