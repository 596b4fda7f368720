"""Periodic remote-access work: one service call per task (beat / the in-process scheduler)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="remoteaccess.expire_sessions")
def expire_sessions() -> int:
    return services.expire_due_sessions()
