from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "fleet.monitoring"
    label = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Monitoring: alarms, logs, telemetry"

    def ready(self) -> None:
        from fleet.inventory.panels import register_gateway_panel

        from .views import gateway_monitoring_panel

        register_gateway_panel(gateway_monitoring_panel)
