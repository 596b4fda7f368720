"""Pushing changes to browser consoles over the channel layer (consumed by consumers.ConsoleConsumer).

Groups: one per organization for alarm changes, one per gateway for its live log tail. Called from
`transaction.on_commit`, so a console never shows something that was rolled back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rest_framework.renderers import JSONRenderer

from fleet.core.timestamps import rfc3339

logger = logging.getLogger(__name__)


def organization_group(organization_id: int) -> str:
    return f"monitoring.org.{organization_id}"


def gateway_logs_group(gateway_id: int) -> str:
    return f"monitoring.logs.{gateway_id}"


def _send(messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Send (group, message) pairs in one trip to the channel layer."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:
        # A console missing one live update refreshes on the next one; ingest must not fail for it.
        logger.exception("Could not publish %d live updates", len(messages))


def log_line(*, gateway_id: int, ts: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    """A log record as the live tail shows it."""
    return {
        "gateway": gateway_id,
        "ts": rfc3339(ts),
        "level": payload["level"],
        "logger": payload.get("logger", ""),
        "message": payload["message"],
    }


def publish_alarm_changes(alarm_ids: Sequence[int]) -> None:
    from .api.serializers import AlarmSerializer
    from .models import Alarm

    alarms = Alarm.objects.select_related("organization", "gateway", "site").filter(pk__in=alarm_ids)
    # Through JSON so only plain types reach the layer (channels-redis packs with msgpack).
    _send(
        [
            (
                organization_group(alarm.organization_id),
                {"type": "alarm.changed", "alarm": json.loads(JSONRenderer().render(AlarmSerializer(alarm).data))},
            )
            for alarm in alarms
        ]
    )


def publish_logs(gateway_id: int, lines: Sequence[dict[str, Any]]) -> None:
    if lines:
        _send([(gateway_logs_group(gateway_id), {"type": "logs.appended", "entries": list(lines)})])
