"""The alarm lifecycle of ISA-18.2 / IEC 62682 as pure logic: states, overlays and the transitions.

No database here: services load an alarm, ask `apply` for its next status (or a refusal with the
reason) and persist the result together with the transition record. Keeping the rules in one
table makes every allowed and every refused transition testable without a gateway.

States (the alarm's condition and whether an operator has seen it):
    active_unacknowledged -> (ack) active_acknowledged -> (clear) closed
    active_unacknowledged -> (clear) cleared_unacknowledged -> (ack) closed
    cleared_unacknowledged -> (raise again) active_unacknowledged
Overlays (who hides the alarm from the console and from notifications, independent of the state):
    shelved until a time (an operator, time-limited), suppressed (by design or a parent condition
    such as its gateway being offline), out of service (maintenance).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import models

from fleet.core import protocol_schemas
from fleet.core.errors import ConflictError
from fleet.core.protocol_schemas import check_vocabulary


class AlarmState(models.TextChoices):
    ACTIVE_UNACKNOWLEDGED = "active_unacknowledged", "Active, unacknowledged"
    ACTIVE_ACKNOWLEDGED = "active_acknowledged", "Active, acknowledged"
    CLEARED_UNACKNOWLEDGED = "cleared_unacknowledged", "Cleared, unacknowledged"
    CLOSED = "closed", "Closed"


OPEN_STATES = (
    AlarmState.ACTIVE_UNACKNOWLEDGED,
    AlarmState.ACTIVE_ACKNOWLEDGED,
    AlarmState.CLEARED_UNACKNOWLEDGED,
)


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    MAJOR = "major", "Major"
    MINOR = "minor", "Minor"
    WARNING = "warning", "Warning"
    INDETERMINATE = "indeterminate", "Indeterminate"


check_vocabulary("alarm severities", Severity, protocol_schemas.SEVERITIES)
# Most urgent first; used for sorting and "at least this severe" filters.
SEVERITY_RANK = {severity.value: rank for rank, severity in enumerate(Severity)}


class Action(models.TextChoices):
    RAISE = "raise", "Raised"
    RAISE_AGAIN = "raise_again", "Raised again"
    CLEAR = "clear", "Returned to normal"
    ACKNOWLEDGE = "acknowledge", "Acknowledged"
    SHELVE = "shelve", "Shelved"
    UNSHELVE = "unshelve", "Unshelved"
    SHELVE_EXPIRED = "shelve_expired", "Shelving expired"
    SUPPRESS = "suppress", "Suppressed"
    UNSUPPRESS = "unsuppress", "Unsuppressed"
    REMOVE_FROM_SERVICE = "remove_from_service", "Removed from service"
    RETURN_TO_SERVICE = "return_to_service", "Returned to service"
    COMMENT = "comment", "Comment"


class TransitionRefusedError(ConflictError):
    """The action is not allowed in the alarm's current status; the message says why."""

    code = "transition_refused"

    def __init__(self, action: Action, message: str) -> None:
        super().__init__(message)
        self.action = action


@dataclass(frozen=True)
class AlarmStatus:
    state: AlarmState
    shelved_until: datetime | None = None
    suppressed: bool = False
    out_of_service: bool = False

    def is_shelved(self, now: datetime) -> bool:
        return self.shelved_until is not None and now < self.shelved_until

    def is_annunciated(self, now: datetime) -> bool:
        """Shown as needing attention and eligible for notifications."""
        return (
            self.state != AlarmState.CLOSED
            and not self.is_shelved(now)
            and not self.suppressed
            and not self.out_of_service
        )


# (state, action) -> next state, for the actions that move the state itself.
STATE_TRANSITIONS: dict[tuple[AlarmState, Action], AlarmState] = {
    (AlarmState.ACTIVE_UNACKNOWLEDGED, Action.RAISE_AGAIN): AlarmState.ACTIVE_UNACKNOWLEDGED,
    (AlarmState.ACTIVE_ACKNOWLEDGED, Action.RAISE_AGAIN): AlarmState.ACTIVE_ACKNOWLEDGED,
    # The condition came back before anyone acknowledged its return to normal: annunciate again.
    (AlarmState.CLEARED_UNACKNOWLEDGED, Action.RAISE_AGAIN): AlarmState.ACTIVE_UNACKNOWLEDGED,
    (AlarmState.ACTIVE_UNACKNOWLEDGED, Action.CLEAR): AlarmState.CLEARED_UNACKNOWLEDGED,
    (AlarmState.ACTIVE_ACKNOWLEDGED, Action.CLEAR): AlarmState.CLOSED,
    (AlarmState.ACTIVE_UNACKNOWLEDGED, Action.ACKNOWLEDGE): AlarmState.ACTIVE_ACKNOWLEDGED,
    (AlarmState.CLEARED_UNACKNOWLEDGED, Action.ACKNOWLEDGE): AlarmState.CLOSED,
}

STATE_REFUSALS: dict[tuple[AlarmState, Action], str] = {
    (AlarmState.CLOSED, Action.RAISE_AGAIN): "The alarm is closed; a new occurrence opens a new alarm.",
    (AlarmState.CLEARED_UNACKNOWLEDGED, Action.CLEAR): "The alarm has already returned to normal.",
    (AlarmState.CLOSED, Action.CLEAR): "The alarm is closed.",
    (AlarmState.ACTIVE_ACKNOWLEDGED, Action.ACKNOWLEDGE): "The alarm is already acknowledged.",
    (AlarmState.CLOSED, Action.ACKNOWLEDGE): "The alarm is closed; there is nothing to acknowledge.",
}

# Actions that set one flag of the status: (flag, new value, refusal when it has that value already).
FLAG_TRANSITIONS: dict[Action, tuple[str, bool, str]] = {
    Action.SUPPRESS: ("suppressed", True, "The alarm is already suppressed."),
    Action.UNSUPPRESS: ("suppressed", False, "The alarm is not suppressed."),
    Action.REMOVE_FROM_SERVICE: ("out_of_service", True, "The alarm is already out of service."),
    Action.RETURN_TO_SERVICE: ("out_of_service", False, "The alarm is not out of service."),
}


def apply(
    status: AlarmStatus,
    action: Action,
    *,
    now: datetime,
    shelve_until: datetime | None = None,
    max_shelve: timedelta | None = None,
) -> AlarmStatus:
    """The status after `action`, or TransitionRefusedError. RAISE (a new alarm) is not a transition."""
    if action in (Action.RAISE_AGAIN, Action.CLEAR, Action.ACKNOWLEDGE):
        key = (status.state, action)
        if key not in STATE_TRANSITIONS:
            raise TransitionRefusedError(action, STATE_REFUSALS[key])
        return dataclasses.replace(status, state=STATE_TRANSITIONS[key])
    if action == Action.COMMENT:
        return status
    if status.state == AlarmState.CLOSED:
        raise TransitionRefusedError(action, f"The alarm is closed; it cannot be {action.label.lower()}.")
    if action == Action.SHELVE:
        return _shelve(status, now=now, until=shelve_until, max_shelve=max_shelve)
    if action in (Action.UNSHELVE, Action.SHELVE_EXPIRED):
        return _unshelve(status, action, now=now)
    if action in FLAG_TRANSITIONS:
        flag, value, refusal = FLAG_TRANSITIONS[action]
        if getattr(status, flag) == value:
            raise TransitionRefusedError(action, refusal)
        changes: dict[str, Any] = {flag: value}
        if action == Action.REMOVE_FROM_SERVICE:
            # Shelving is meaningless for an alarm taken out of service; it ends here.
            changes["shelved_until"] = None
        return dataclasses.replace(status, **changes)
    raise TransitionRefusedError(action, f"'{action}' is not an operator or gateway transition.")


def _unshelve(status: AlarmStatus, action: Action, *, now: datetime) -> AlarmStatus:
    """An operator's unshelve, or the end of the shelving time (SHELVE_EXPIRED, from the timer)."""
    if action == Action.UNSHELVE and not status.is_shelved(now):
        raise TransitionRefusedError(action, "The alarm is not shelved.")
    if action == Action.SHELVE_EXPIRED and (status.shelved_until is None or status.is_shelved(now)):
        raise TransitionRefusedError(action, "The alarm's shelving has not expired.")
    return dataclasses.replace(status, shelved_until=None)


def _shelve(status: AlarmStatus, *, now: datetime, until: datetime | None, max_shelve: timedelta | None) -> AlarmStatus:
    if until is None:
        raise TransitionRefusedError(Action.SHELVE, "Shelving needs an end time (a duration).")
    if status.out_of_service:
        raise TransitionRefusedError(Action.SHELVE, "The alarm is out of service; return it to service first.")
    if status.is_shelved(now):
        raise TransitionRefusedError(Action.SHELVE, "The alarm is already shelved; unshelve it first.")
    if until <= now:
        raise TransitionRefusedError(Action.SHELVE, "The shelving end time must be in the future.")
    if max_shelve is not None and until - now > max_shelve:
        hours = max_shelve.total_seconds() / 3600
        raise TransitionRefusedError(Action.SHELVE, f"Alarms may be shelved for at most {hours:g} hours.")
    return dataclasses.replace(status, shelved_until=until)
