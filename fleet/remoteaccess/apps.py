from django.apps import AppConfig


class RemoteAccessConfig(AppConfig):
    name = "fleet.remoteaccess"
    label = "remoteaccess"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Remote maintenance access"

    def ready(self) -> None:
        from fleet.inventory.panels import register_gateway_panel

        from . import receivers  # noqa: F401  (connects the signal receivers)
        from .panels import gateway_remote_access_panel

        register_gateway_panel(gateway_remote_access_panel)
