from django.apps import AppConfig


class UplinkConfig(AppConfig):
    name = "fleet.uplink"
    label = "uplink"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Gateway uplink"

    def ready(self) -> None:
        from fleet.inventory.panels import register_gateway_panel

        from .panels import gateway_commands_panel

        # After the monitoring section (INSTALLED_APPS order), where the buttons always were.
        register_gateway_panel(gateway_commands_panel)
