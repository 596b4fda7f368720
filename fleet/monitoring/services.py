"""State changes of monitoring: alarm transitions, ingest of what gateways stream, offline detection.

Every alarm transition goes through `_transition`, which asks the pure lifecycle (lifecycle.py)
for the next status, persists it with an AlarmTransition row (who, when, comment), audits operator
actions, and after commit pushes the change to consoles and notification groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from fleet.accounts.authorization import Actor, authorize
from fleet.accounts.roles import Capability
from fleet.audit.services import record as audit
from fleet.core.errors import DomainError
from fleet.inventory.models import Gateway
from fleet.inventory.presence import tracker

from . import live, notifications
from .bulk import db_datetime, db_json, insert_rows
from .lifecycle import OPEN_STATES, Action, AlarmState, Severity, TransitionRefusedError, apply
from .models import (
    Alarm,
    AlarmTransition,
    GatewayEvent,
    LogEntry,
    MonitoringSettings,
    StatusReport,
    TelemetryLatest,
    TelemetrySample,
)

logger = logging.getLogger(__name__)

SERVER_SOURCE = "server"
OFFLINE_CODE = "gateway.offline"
OFFLINE_SUPPRESSION = "gateway offline"


def monitoring_settings_for(organization_id: int) -> MonitoringSettings:
    found = MonitoringSettings.objects.filter(organization_id=organization_id).first()
    return found or MonitoringSettings(organization_id=organization_id)


def _actor_label(user: Any, gateway: Gateway | None) -> str:
    if user is not None and getattr(user, "is_authenticated", False):
        return str(user.get_username())
    if gateway is not None:
        return f"gateway:{gateway.serial}"
    return "system"


_collected_changes: ContextVar[set[int] | None] = ContextVar("collected_alarm_changes", default=None)


def announce_alarm_changes(alarm_ids: Iterable[int]) -> None:
    """Push changed alarms to consoles and into notification groups (runs after the commit)."""
    ids = sorted(set(alarm_ids))
    live.publish_alarm_changes(ids)
    now = timezone.now()
    for alarm_id in ids:
        notifications.alarm_changed(alarm_id=alarm_id, now=now)


@contextmanager
def announcing_together() -> Iterator[None]:
    """Inside a transaction: alarm changes are announced once, together, after it commits.

    A batch from a gateway may change dozens of alarms; one announcement costs one trip to the
    channel layer instead of one per change.
    """
    if _collected_changes.get() is not None:
        yield
        return
    collected: set[int] = set()
    token = _collected_changes.set(collected)
    try:
        yield
    finally:
        _collected_changes.reset(token)
    if collected:
        transaction.on_commit(lambda: announce_alarm_changes(collected))


def _after_commit(alarm: Alarm) -> None:
    collected = _collected_changes.get()
    if collected is not None:
        collected.add(alarm.pk)
        return
    alarm_id = alarm.pk
    transaction.on_commit(lambda: announce_alarm_changes([alarm_id]))


def _transition(
    alarm: Alarm,
    action: Action,
    *,
    now: datetime,
    user: Any = None,
    gateway: Gateway | None = None,
    comment: str = "",
    shelve_until: datetime | None = None,
    ip: str | None = None,
) -> Alarm:
    """Apply one lifecycle action to a locked alarm; raise TransitionRefusedError when not allowed."""
    before = alarm.status
    max_shelve = None
    if action == Action.SHELVE:
        max_shelve = timedelta(hours=monitoring_settings_for(alarm.organization_id).max_shelve_hours)
    after = apply(before, action, now=now, shelve_until=shelve_until, max_shelve=max_shelve)
    alarm.state = after.state
    alarm.shelved_until = after.shelved_until
    alarm.suppressed = after.suppressed
    alarm.out_of_service = after.out_of_service
    if action == Action.ACKNOWLEDGE:
        alarm.acknowledged_at = now
        alarm.acknowledged_by = user
    if action == Action.SHELVE:
        alarm.shelved_by = user
    if action == Action.CLEAR:
        alarm.cleared_at = now
    if action in (Action.SUPPRESS, Action.UNSUPPRESS):
        alarm.suppressed_reason = comment if action == Action.SUPPRESS else ""
    if after.state == AlarmState.CLOSED and before.state != AlarmState.CLOSED:
        alarm.closed_at = now
    alarm.save()
    AlarmTransition.objects.create(
        alarm=alarm,
        at=now,
        action=action,
        from_state=before.state,
        to_state=after.state,
        actor_user=user if getattr(user, "is_authenticated", False) else None,
        actor_label=_actor_label(user, gateway),
        comment=comment,
    )
    if getattr(user, "is_authenticated", False):
        audit(
            action=f"alarm.{action}",
            target=alarm,
            user=user,
            ip=ip,
            before={
                "state": before.state,
                "shelved_until": before.shelved_until,
                "suppressed": before.suppressed,
                "out_of_service": before.out_of_service,
            },
            after={
                "state": after.state,
                "shelved_until": after.shelved_until,
                "suppressed": after.suppressed,
                "out_of_service": after.out_of_service,
            },
            detail={"comment": comment} if comment else None,
        )
    _after_commit(alarm)
    return alarm


def _locked(alarm: Alarm) -> Alarm:
    return (
        Alarm.objects.select_for_update(of=("self",)).select_related("organization", "gateway", "site").get(pk=alarm.pk)
    )


# --- conditions reported by gateways (or detected by the server) -------------------------------


def _open_alarm(gateway: Gateway, source: str, code: str) -> Alarm | None:
    return (
        Alarm.objects.select_for_update()
        .filter(gateway=gateway, source=source, code=code)
        .exclude(state=AlarmState.CLOSED)
        .first()
    )


def _gateway_is_offline(gateway: Gateway) -> bool:
    return (
        Alarm.objects.filter(gateway=gateway, source=SERVER_SOURCE, code=OFFLINE_CODE)
        .filter(state__in=[AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED])
        .exists()
    )


@transaction.atomic
def report_condition(
    *,
    gateway: Gateway,
    source: str,
    code: str,
    severity: str,
    raised: bool,
    message: str,
    at: datetime,
    device: str = "",
    details: dict[str, Any] | None = None,
    reported_by_gateway: bool = True,
) -> Alarm | None:
    """A condition was raised or cleared. One open alarm per (gateway, source, code).

    A clear for a condition that is not active is ignored: agents resend their clears after a
    restart, and that must not be an error.
    """
    actor = gateway if reported_by_gateway else None
    alarm = _open_alarm(gateway, source, code)
    if not raised:
        if alarm is None or alarm.state == AlarmState.CLEARED_UNACKNOWLEDGED:
            return alarm
        return _transition(alarm, Action.CLEAR, now=at, gateway=actor)
    if alarm is not None:
        alarm.occurrences += 1
        alarm.last_raised_at = max(alarm.last_raised_at, at)
        alarm.severity = severity
        alarm.message = message
        alarm.details = details
        return _transition(alarm, Action.RAISE_AGAIN, now=at, gateway=actor)
    alarm = Alarm.objects.create(
        organization_id=gateway.organization_id,
        gateway=gateway,
        site_id=gateway.site_id,
        source=source,
        code=code,
        device=device,
        severity=severity,
        message=message,
        details=details,
        state=AlarmState.ACTIVE_UNACKNOWLEDGED,
        raised_at=at,
        last_raised_at=at,
    )
    AlarmTransition.objects.create(
        alarm=alarm,
        at=at,
        action=Action.RAISE,
        from_state="",
        to_state=alarm.state,
        actor_label=_actor_label(None, actor),
    )
    # A field device's alarm while its gateway is offline is a consequence, not news.
    if device and _gateway_is_offline(gateway):
        return _transition(alarm, Action.SUPPRESS, now=at, comment=OFFLINE_SUPPRESSION)
    _after_commit(alarm)
    return alarm


# --- operator actions -----------------------------------------------------------------------


# The operator's actions on an alarm, by the name the REST API, the web UI and bulk actions use.
OPERATOR_ACTIONS: dict[str, Action] = {
    action.value: action
    for action in (
        Action.ACKNOWLEDGE,
        Action.SHELVE,
        Action.UNSHELVE,
        Action.SUPPRESS,
        Action.UNSUPPRESS,
        Action.REMOVE_FROM_SERVICE,
        Action.RETURN_TO_SERVICE,
        Action.COMMENT,
    )
}
BULK_ACTIONS = (Action.ACKNOWLEDGE, Action.SHELVE, Action.COMMENT)


def act_on_alarm(
    *,
    alarm: Alarm,
    action: Action,
    user: Actor,
    comment: str = "",
    shelve_for: timedelta | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> Alarm:
    """One operator action (OPERATOR_ACTIONS) on one alarm: checked, recorded as a transition, audited."""
    comment = comment.strip()
    if action not in OPERATOR_ACTIONS.values():
        raise DomainError(f"'{action}' is not an operator action.", field="action")
    if action == Action.SHELVE and shelve_for is None:
        raise DomainError("Shelving needs a duration.", code="no_duration", field="duration_minutes")
    if action == Action.COMMENT and not comment:
        raise DomainError("A comment cannot be empty.", code="empty_comment", field="comment")
    authorize(user, Capability.TRIAGE_ALARMS, alarm.organization_id)
    now = now or timezone.now()
    with transaction.atomic():
        return _transition(
            _locked(alarm),
            action,
            now=now,
            user=user,
            comment=comment,
            shelve_until=now + shelve_for if shelve_for is not None else None,
            ip=ip,
        )


@dataclass
class BulkResult:
    done: list[Alarm] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def apply_to_alarms(
    *,
    alarms: Iterable[Alarm],
    action: str,
    user: Actor,
    comment: str = "",
    shelve_for: timedelta | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> BulkResult:
    """One operator action on many alarms, each on its own: one refusal must not block the others."""
    if action not in BULK_ACTIONS:
        raise DomainError(f"'{action}' is not a bulk action; use one of {', '.join(BULK_ACTIONS)}.", field="action")
    result = BulkResult()
    with announcing_together():
        for alarm in alarms:
            try:
                done = act_on_alarm(
                    alarm=alarm,
                    action=Action(action),
                    user=user,
                    comment=comment,
                    shelve_for=shelve_for,
                    ip=ip,
                    now=now,
                )
            except TransitionRefusedError as exc:
                result.refused[alarm.pk] = exc.message
            else:
                result.done.append(done)
    return result


def expire_shelves(*, now: datetime | None = None) -> int:
    """Unshelve every alarm whose shelving time is over (the console already treats them as unshelved)."""
    now = now or timezone.now()
    expired = 0
    for alarm_id in Alarm.objects.filter(shelved_until__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            alarm = Alarm.objects.select_for_update().select_related("organization").get(pk=alarm_id)
            try:
                _transition(alarm, Action.SHELVE_EXPIRED, now=now)
            except TransitionRefusedError:
                continue
            expired += 1
    return expired


# --- gateway presence -------------------------------------------------------------------------


def gateway_came_online(*, gateway: Gateway, now: datetime | None = None) -> None:
    """Clear the offline alarm and lift the suppression it put on the gateway's device alarms."""
    now = now or timezone.now()
    with transaction.atomic(), announcing_together():
        report_condition(
            gateway=gateway,
            source=SERVER_SOURCE,
            code=OFFLINE_CODE,
            severity=Severity.MAJOR,
            raised=False,
            message="",
            at=now,
            reported_by_gateway=False,
        )
        suppressed = Alarm.objects.select_for_update().filter(
            gateway=gateway, suppressed=True, suppressed_reason=OFFLINE_SUPPRESSION, state__in=OPEN_STATES
        )
        for alarm in suppressed:
            _transition(alarm, Action.UNSUPPRESS, now=now, comment="gateway back online")


def detect_offline_gateways(*, now: datetime | None = None) -> list[Gateway]:
    """Raise 'gateway offline' for active gateways silent longer than their organization allows."""
    now = now or timezone.now()
    tracker.flush()
    offline_after = {row.organization_id: row.offline_after for row in MonitoringSettings.objects.all()}
    # A subquery, not a list: the number of offline gateways is unbounded.
    already = (
        Alarm.objects.filter(source=SERVER_SOURCE, code=OFFLINE_CODE)
        .exclude(state=AlarmState.CLOSED)
        .exclude(state=AlarmState.CLEARED_UNACKNOWLEDGED)
        .values("gateway_id")
    )
    default_after = MonitoringSettings().offline_after
    earliest = now - min([default_after, *offline_after.values()])
    candidates = Gateway.objects.filter(status=Gateway.Status.ACTIVE, last_seen__lt=earliest).exclude(pk__in=already)
    went_offline = []
    for gateway in candidates.select_related("organization"):
        limit = offline_after.get(gateway.organization_id, default_after)
        assert gateway.last_seen is not None
        if gateway.last_seen >= now - limit:
            continue
        with transaction.atomic(), announcing_together():
            report_condition(
                gateway=gateway,
                source=SERVER_SOURCE,
                code=OFFLINE_CODE,
                severity=Severity.MAJOR,
                raised=True,
                message=f"No message from the gateway since {gateway.last_seen:%Y-%m-%d %H:%M:%S} UTC.",
                at=now,
                reported_by_gateway=False,
            )
            for alarm in (
                Alarm.objects.select_for_update()
                .filter(gateway=gateway, suppressed=False, state__in=OPEN_STATES)
                .exclude(device="")
            ):
                _transition(alarm, Action.SUPPRESS, now=now, comment=OFFLINE_SUPPRESSION)
        went_offline.append(gateway)
    return went_offline


# --- bulk ingest of high-volume records (called inside the uplink's batch transaction) -----------


@dataclass(frozen=True)
class IncomingRecord:
    seq: int
    ts: datetime
    payload: dict[str, Any]


def store_logs(*, gateway: Gateway, records: Sequence[IncomingRecord], received_at: datetime) -> int:
    columns = ("gateway_id", "seq", "ts", "received_at", "level", "logger", "message", "fields")
    received = db_datetime(received_at)
    insert_rows(
        LogEntry,
        columns,
        (
            (
                gateway.pk,
                r.seq,
                db_datetime(r.ts),
                received,
                r.payload["level"],
                r.payload.get("logger", ""),
                r.payload["message"],
                db_json(r.payload.get("fields")),
            )
            for r in records
        ),
    )
    tail = [live.log_line(gateway_id=gateway.pk, ts=r.ts, payload=r.payload) for r in records]
    gateway_id = gateway.pk
    transaction.on_commit(lambda: live.publish_logs(gateway_id, tail))
    return len(records)


def store_telemetry(*, gateway: Gateway, records: Sequence[IncomingRecord]) -> int:
    samples: list[tuple[int, str, str, Any, float]] = []
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    for r in records:
        device = r.payload["device"]
        ts = db_datetime(r.ts)
        for point, value in r.payload["points"].items():
            if value is None:
                continue
            samples.append((gateway.pk, device, point, ts, float(value)))
            current = latest.get((device, point))
            if current is None or current[0] <= r.ts:
                latest[(device, point)] = (r.ts, float(value))
    insert_rows(TelemetrySample, ("gateway_id", "device", "point", "ts", "value"), samples)
    if latest:
        # An older record resent late must not overwrite a newer latest value.
        existing = {
            (row.device, row.point): row.ts
            for row in TelemetryLatest.objects.filter(gateway=gateway, device__in={d for d, _ in latest})
        }
        TelemetryLatest.objects.bulk_create(
            [
                TelemetryLatest(gateway=gateway, device=device, point=point, ts=ts, value=value)
                for (device, point), (ts, value) in latest.items()
                if (device, point) not in existing or existing[(device, point)] <= ts
            ],
            update_conflicts=True,
            unique_fields=["gateway", "device", "point"],
            update_fields=["ts", "value"],
        )
    return len(samples)


def store_events(*, gateway: Gateway, records: Sequence[IncomingRecord], received_at: datetime) -> list[GatewayEvent]:
    return GatewayEvent.objects.bulk_create(
        [
            GatewayEvent(
                gateway=gateway,
                seq=r.seq,
                ts=r.ts,
                received_at=received_at,
                name=r.payload["name"],
                message=r.payload.get("message", ""),
                data=r.payload.get("data"),
            )
            for r in records
        ]
    )


def store_status_reports(
    *, gateway: Gateway, records: Sequence[IncomingRecord], received_at: datetime
) -> list[StatusReport]:
    return StatusReport.objects.bulk_create(
        [
            StatusReport(
                gateway=gateway,
                seq=r.seq,
                ts=r.ts,
                received_at=received_at,
                deployment=r.payload["deployment"],
                step=r.payload["step"],
                payload=r.payload,
            )
            for r in records
        ]
    )
