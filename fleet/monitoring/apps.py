from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "fleet.monitoring"
    label = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Monitoring: alarms, logs, telemetry"
