from __future__ import annotations

from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "firmware.deployments"
    label = "deployments"
    verbose_name = "Deployments and rollouts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Agent step reports arrive through the uplink's `status_reported` signal.
        from . import receivers  # noqa: F401
