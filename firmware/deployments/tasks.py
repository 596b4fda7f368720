"""Celery tasks: one-line calls of services (beat, or the embedded timer in fleet.core.scheduler)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="deployments.run_rollouts")
def run_rollouts() -> dict[str, int]:
    return services.run_rollouts(now=timezone.now())
