"""Celery tasks: one-line calls of services (eager in the embedded default)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="firmware.publish_repository")
def publish_repository() -> None:
    services.publish()


@shared_task(name="firmware.resign_repository")
def resign_repository() -> None:
    services.resign()
