from django.apps import AppConfig


class UplinkConfig(AppConfig):
    name = "fleet.uplink"
    label = "uplink"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Gateway uplink"
