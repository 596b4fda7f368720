from django.apps import AppConfig


class RemoteAccessConfig(AppConfig):
    name = "fleet.remoteaccess"
    label = "remoteaccess"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Remote maintenance access"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the signal receivers)
