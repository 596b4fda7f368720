"""Periodic monitoring work, one service call per task. The lead's beat schedule runs them:

monitoring.detect_offline_gateways   every 30 s
monitoring.expire_shelves            every 30 s
monitoring.flush_notifications       every 10 s
monitoring.maintain_partitions       every 6 h (creates partitions ahead, applies retention)
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import notifications, partitions, services


@shared_task(name="monitoring.detect_offline_gateways")
def detect_offline_gateways() -> int:
    return len(services.detect_offline_gateways())


@shared_task(name="monitoring.expire_shelves")
def expire_shelves() -> int:
    return services.expire_shelves()


@shared_task(name="monitoring.flush_notifications")
def flush_notifications() -> int:
    return len(notifications.flush_notifications())


@shared_task(name="monitoring.maintain_partitions")
def maintain_partitions() -> dict[str, object]:
    result = partitions.maintain_partitions(now=timezone.now())
    return {"created": result.created_partitions, "dropped": result.dropped_partitions, "deleted": result.deleted_rows}
