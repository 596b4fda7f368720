"""Agent step reports: the uplink stores each `status` record, then hands it over through a signal."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from fleet.uplink.signals import status_reported

from . import services

logger = logging.getLogger(__name__)


@receiver(status_reported, dispatch_uid="deployments.apply_status_reports")
def apply_status_reports(sender: Any, *, gateway: Any, reports: list[Any], **kwargs: Any) -> None:
    """Runs inside the uplink's batch transaction. A refused report is not an error for the batch
    (the record is stored; the refusal is logged in the gateway's deployment history)."""
    now = timezone.now()
    for report in reports:
        services.apply_gateway_report(gateway=gateway, report=report.payload, now=now, reported_at=report.ts)
