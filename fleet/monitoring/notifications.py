"""Alarm notifications by e-mail and signed webhooks, grouped the way Prometheus Alertmanager does.

An alarm change puts the alarm into one aggregation group per matching route (the alarm's values
of the route's `group_by` labels form the group). A new group waits `group_wait` before its first
notification, so an inverter fault and its consequences arrive as one message; later changes wait
for `group_interval` after the previous send; an unchanged, still-firing group is re-sent every
`repeat_interval`. Silences mute matching alarms without touching them (shelving is the operator's
console tool; silences are for notifications only). Time is always passed in, so tests control it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from fleet.core.timestamps import rfc3339

from .lifecycle import AlarmState
from .models import Alarm, NotificationDelivery, NotificationGroup, NotificationRoute, Silence

logger = logging.getLogger(__name__)

FIRING_STATES = (AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED)
WEBHOOK_TIMEOUT_S = 10.0


def group_labels(route: NotificationRoute, labels: dict[str, str]) -> dict[str, str]:
    return {name: labels.get(name, "") for name in route.group_by}


def group_key(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()


def route_matches(route: NotificationRoute, alarm: Alarm) -> bool:
    return route.enabled and (not route.severities or alarm.severity in route.severities)


def alarm_changed(*, alarm_id: int, now: datetime) -> None:
    """Put the alarm into its groups and schedule their next evaluation."""
    alarm = Alarm.objects.select_related("organization", "gateway", "site").filter(pk=alarm_id).first()
    if alarm is None:
        return
    labels = alarm.labels
    for route in NotificationRoute.objects.filter(organization_id=alarm.organization_id, enabled=True):
        if not route_matches(route, alarm):
            continue
        with transaction.atomic():
            selected = group_labels(route, labels)
            group, _ = NotificationGroup.objects.select_for_update().get_or_create(
                route=route, key=group_key(selected), defaults={"labels": selected, "created": now}
            )
            group.alarms.add(alarm)
            if group.last_sent_at is None:
                candidate = group.created + timedelta(seconds=route.group_wait_seconds)
            else:
                candidate = max(now, group.last_sent_at + timedelta(seconds=route.group_interval_seconds))
            if group.next_flush_at is None or candidate < group.next_flush_at:
                group.next_flush_at = candidate
                group.save(update_fields=["next_flush_at"])


def _silenced(alarm: Alarm, silences: list[Silence], now: datetime) -> bool:
    labels = alarm.labels
    return any(silence.matches(labels, now) for silence in silences)


def flush_notifications(*, now: datetime | None = None) -> list[NotificationDelivery]:
    """Evaluate every group that is due and send what changed (or what is due for a repeat)."""
    now = now or timezone.now()
    deliveries = []
    due = NotificationGroup.objects.filter(next_flush_at__lte=now).values_list("pk", flat=True)
    for group_id in list(due):
        delivery = _flush_group(group_id, now)
        if delivery is not None:
            deliveries.append(delivery)
    return deliveries


@transaction.atomic
def _flush_group(group_id: int, now: datetime) -> NotificationDelivery | None:
    group = NotificationGroup.objects.select_for_update().select_related("route__organization").get(pk=group_id)
    route = group.route
    alarms = list(group.alarms.select_related("organization", "gateway", "site"))
    silences = list(Silence.objects.filter(organization_id=route.organization_id, starts_at__lte=now, ends_at__gt=now))
    firing = [
        a
        for a in alarms
        if a.state in FIRING_STATES and a.status.is_annunciated(now) and not _silenced(a, silences, now)
    ]
    fingerprint = sorted(a.pk for a in firing)
    previous = set(group.last_sent_fingerprint)
    resolved = [a for a in alarms if a.pk in previous and a.pk not in fingerprint]
    repeat_due = (
        bool(firing)
        and group.last_sent_at is not None
        and (now >= group.last_sent_at + timedelta(seconds=route.repeat_interval_seconds))
    )
    delivery = None
    if (fingerprint != sorted(previous) and (firing or resolved)) or repeat_due:
        delivery = _deliver(group, firing=firing, resolved=resolved, now=now)
        if not delivery.ok:
            # Nothing reached the receiver: keep the group as it was and try again a group interval later.
            group.next_flush_at = now + timedelta(seconds=route.group_interval_seconds)
            group.save(update_fields=["next_flush_at"])
            return delivery
        group.last_sent_at = now
        group.last_sent_fingerprint = fingerprint
    # Alarms no longer firing leave the group; a later change (unshelve, raise) brings them back.
    group.alarms.remove(*[a for a in alarms if a.pk not in fingerprint])
    if firing and group.last_sent_at is not None:
        group.next_flush_at = group.last_sent_at + timedelta(seconds=route.repeat_interval_seconds)
    else:
        group.next_flush_at = None
    group.save(update_fields=["last_sent_at", "last_sent_fingerprint", "next_flush_at"])
    return delivery


def _alarm_summary(alarm: Alarm) -> dict[str, Any]:
    return {
        "id": alarm.pk,
        "labels": alarm.labels,
        "state": alarm.state,
        "message": alarm.message,
        "raised_at": rfc3339(alarm.raised_at),
        "occurrences": alarm.occurrences,
    }


def notification_body(
    group: NotificationGroup, *, firing: list[Alarm], resolved: list[Alarm], now: datetime
) -> dict[str, Any]:
    return {
        "version": 1,
        "status": "firing" if firing else "resolved",
        "organization": group.route.organization.slug,
        "route": group.route.name,
        "group_labels": group.labels,
        "firing": [_alarm_summary(a) for a in firing],
        "resolved": [_alarm_summary(a) for a in resolved],
        "sent_at": rfc3339(now),
    }


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of '<timestamp>.' + body>`; receivers recompute it and check the age."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _deliver(
    group: NotificationGroup, *, firing: list[Alarm], resolved: list[Alarm], now: datetime
) -> NotificationDelivery:
    route = group.route
    body = notification_body(group, firing=firing, resolved=resolved, now=now)
    error = ""
    try:
        if route.channel == NotificationRoute.Channel.EMAIL:
            _send_email(route, body)
        else:
            _send_webhook(route, body, now)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("Notification via route %s failed: %s", route.pk, error)
    return NotificationDelivery.objects.create(
        group=group, at=now, firing=len(firing), resolved=len(resolved), ok=not error, error=error
    )


def _send_email(route: NotificationRoute, body: dict[str, Any]) -> None:
    recipients = [address.strip() for address in route.target.split(",") if address.strip()]
    labels = ", ".join(f"{k}={v}" for k, v in body["group_labels"].items()) or route.name
    subject = f"[Gridfleet] {len(body['firing'])} firing, {len(body['resolved'])} resolved: {labels}"
    lines = [f"Route: {route.name} ({body['organization']})", ""]
    for title, alarms in (("FIRING", body["firing"]), ("RESOLVED", body["resolved"])):
        for alarm in alarms:
            lab = alarm["labels"]
            lines.append(
                f"{title} [{lab['severity']}] {lab['code']} on {lab['gateway']}"
                f"{' / ' + lab['device'] if lab['device'] else ''}: {alarm['message']}"
            )
    send_mail(subject, "\n".join(lines), None, recipients)


def _send_webhook(route: NotificationRoute, body: dict[str, Any], now: datetime) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    headers = {"Content-Type": "application/json", "X-Gridfleet-Timestamp": str(timestamp)}
    if route.secret:
        headers["X-Gridfleet-Signature"] = sign_webhook(route.secret, timestamp, payload)
    response = httpx.post(route.target, content=payload, headers=headers, timeout=WEBHOOK_TIMEOUT_S)
    response.raise_for_status()
