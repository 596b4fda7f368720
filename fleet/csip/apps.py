from django.apps import AppConfig


class CsipConfig(AppConfig):
    name = "fleet.csip"
    label = "csip"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Utility link: IEEE 2030.5 / CSIP head-end"

    def ready(self) -> None:
        from fleet.inventory.panels import register_gateway_panel
        from fleet.uplink.signals import events_received

        from .receivers import utility_link_reported
        from .views import gateway_csip_panel

        register_gateway_panel(gateway_csip_panel)
        events_received.connect(utility_link_reported, dispatch_uid="csip-link-state")
