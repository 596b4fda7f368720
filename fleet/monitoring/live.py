"""Pushing changes to browser consoles over the channel layer (consumed by consumers.ConsoleConsumer).

Groups: one per organization for alarm changes, one per gateway for its live log tail. Called from
`transaction.on_commit`, so a console never shows something that was rolled back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rest_framework.renderers import JSONRenderer

if TYPE_CHECKING:
    from .models import LogEntry

logger = logging.getLogger(__name__)


def organization_group(organization_id: int) -> str:
    return f"monitoring.org.{organization_id}"


def gateway_logs_group(gateway_id: int) -> str:
    return f"monitoring.logs.{gateway_id}"


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # A console missing one live update refreshes on the next one; ingest must not fail for it.
        logger.exception("Could not publish to %s", group)


def log_payload(entry: LogEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "gateway": entry.gateway_id,
        "ts": entry.ts.isoformat(),
        "level": entry.level,
        "logger": entry.logger,
        "message": entry.message,
    }


def publish_alarm_change(alarm_id: int) -> None:
    from .api.serializers import AlarmSerializer
    from .models import Alarm

    alarm = Alarm.objects.select_related("organization", "gateway", "site").filter(pk=alarm_id).first()
    if alarm is None:
        return
    # Through JSON so only plain types reach the layer (channels-redis packs with msgpack).
    data = json.loads(JSONRenderer().render(AlarmSerializer(alarm).data))
    _send(organization_group(alarm.organization_id), {"type": "alarm.changed", "alarm": data})


def publish_logs(gateway_id: int, entries: Sequence[LogEntry]) -> None:
    if entries:
        _send(gateway_logs_group(gateway_id), {"type": "logs.appended", "entries": [log_payload(e) for e in entries]})
