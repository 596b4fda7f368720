"""The ISA-18.2 alarm lifecycle as pure logic: every allowed and every refused transition."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from fleet.monitoring.lifecycle import (
    Action,
    AlarmState,
    AlarmStatus,
    TransitionRefusedError,
    apply,
)
from tests.conftest import NOON_PACIFIC

NOW = NOON_PACIFIC.replace(hour=13, minute=0)
S = AlarmState

ALLOWED_STATE_CHANGES = [
    (S.ACTIVE_UNACKNOWLEDGED, Action.RAISE_AGAIN, S.ACTIVE_UNACKNOWLEDGED),
    (S.ACTIVE_ACKNOWLEDGED, Action.RAISE_AGAIN, S.ACTIVE_ACKNOWLEDGED),
    (S.CLEARED_UNACKNOWLEDGED, Action.RAISE_AGAIN, S.ACTIVE_UNACKNOWLEDGED),
    (S.ACTIVE_UNACKNOWLEDGED, Action.CLEAR, S.CLEARED_UNACKNOWLEDGED),
    (S.ACTIVE_ACKNOWLEDGED, Action.CLEAR, S.CLOSED),
    (S.ACTIVE_UNACKNOWLEDGED, Action.ACKNOWLEDGE, S.ACTIVE_ACKNOWLEDGED),
    (S.CLEARED_UNACKNOWLEDGED, Action.ACKNOWLEDGE, S.CLOSED),
]

REFUSED_STATE_CHANGES = [
    (S.CLOSED, Action.RAISE_AGAIN, "new occurrence opens a new alarm"),
    (S.CLEARED_UNACKNOWLEDGED, Action.CLEAR, "already returned to normal"),
    (S.CLOSED, Action.CLEAR, "closed"),
    (S.ACTIVE_ACKNOWLEDGED, Action.ACKNOWLEDGE, "already acknowledged"),
    (S.CLOSED, Action.ACKNOWLEDGE, "nothing to acknowledge"),
]


@pytest.mark.parametrize(("state", "action", "expected"), ALLOWED_STATE_CHANGES)
def test_state_transitions_follow_isa_18_2(state: AlarmState, action: Action, expected: AlarmState) -> None:
    assert apply(AlarmStatus(state=state), action, now=NOW).state == expected


@pytest.mark.parametrize(("state", "action", "reason"), REFUSED_STATE_CHANGES)
def test_refused_state_transitions_say_why(state: AlarmState, action: Action, reason: str) -> None:
    with pytest.raises(TransitionRefusedError, match=reason):
        apply(AlarmStatus(state=state), action, now=NOW)


def test_every_state_and_state_action_pair_is_either_allowed_or_refused() -> None:
    covered = {(s, a) for s, a, _ in ALLOWED_STATE_CHANGES} | {(s, a) for s, a, _ in REFUSED_STATE_CHANGES}
    every = {(s, a) for s in AlarmState for a in (Action.RAISE_AGAIN, Action.CLEAR, Action.ACKNOWLEDGE)}
    assert covered == every


def test_shelving_hides_the_alarm_until_it_expires() -> None:
    status = apply(
        AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED),
        Action.SHELVE,
        now=NOW,
        shelve_until=NOW + timedelta(hours=1),
    )
    assert status.is_shelved(NOW + timedelta(minutes=59))
    assert not status.is_annunciated(NOW + timedelta(minutes=59))
    assert not status.is_shelved(NOW + timedelta(hours=1))
    assert status.is_annunciated(NOW + timedelta(hours=1))


def test_shelving_expiry_is_refused_before_the_end_time_and_allowed_after() -> None:
    shelved = AlarmStatus(state=S.ACTIVE_ACKNOWLEDGED, shelved_until=NOW + timedelta(minutes=5))
    with pytest.raises(TransitionRefusedError, match="not expired"):
        apply(shelved, Action.SHELVE_EXPIRED, now=NOW)
    assert apply(shelved, Action.SHELVE_EXPIRED, now=NOW + timedelta(minutes=5)).shelved_until is None


@pytest.mark.parametrize(
    ("status", "until", "reason"),
    [
        (AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED), None, "needs an end time"),
        (AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED), NOW, "must be in the future"),
        (AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED), NOW + timedelta(hours=25), "at most 24 hours"),
        (AlarmStatus(state=S.CLOSED), NOW + timedelta(hours=1), "closed"),
        (
            AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED, shelved_until=NOW + timedelta(minutes=1)),
            NOW + timedelta(hours=1),
            "already shelved",
        ),
        (
            AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED, out_of_service=True),
            NOW + timedelta(hours=1),
            "out of service",
        ),
    ],
)
def test_refused_shelving(status: AlarmStatus, until: datetime | None, reason: str) -> None:
    with pytest.raises(TransitionRefusedError, match=reason):
        apply(status, Action.SHELVE, now=NOW, shelve_until=until, max_shelve=timedelta(hours=24))


def test_unshelve_is_refused_for_an_alarm_that_is_not_shelved() -> None:
    with pytest.raises(TransitionRefusedError, match="not shelved"):
        apply(AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED), Action.UNSHELVE, now=NOW)
    expired = AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED, shelved_until=NOW - timedelta(seconds=1))
    with pytest.raises(TransitionRefusedError, match="not shelved"):
        apply(expired, Action.UNSHELVE, now=NOW)


def test_suppression_and_out_of_service_are_overlays_that_toggle_once() -> None:
    active = AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED)
    suppressed = apply(active, Action.SUPPRESS, now=NOW)
    assert suppressed.suppressed and not suppressed.is_annunciated(NOW)
    assert suppressed.state == S.ACTIVE_UNACKNOWLEDGED
    with pytest.raises(TransitionRefusedError, match="already suppressed"):
        apply(suppressed, Action.SUPPRESS, now=NOW)
    assert apply(suppressed, Action.UNSUPPRESS, now=NOW).is_annunciated(NOW)
    with pytest.raises(TransitionRefusedError, match="not suppressed"):
        apply(active, Action.UNSUPPRESS, now=NOW)

    out = apply(active, Action.REMOVE_FROM_SERVICE, now=NOW)
    assert out.out_of_service and not out.is_annunciated(NOW)
    with pytest.raises(TransitionRefusedError, match="already out of service"):
        apply(out, Action.REMOVE_FROM_SERVICE, now=NOW)
    assert apply(out, Action.RETURN_TO_SERVICE, now=NOW).is_annunciated(NOW)
    with pytest.raises(TransitionRefusedError, match="not out of service"):
        apply(active, Action.RETURN_TO_SERVICE, now=NOW)


def test_removing_from_service_ends_shelving() -> None:
    shelved = AlarmStatus(state=S.ACTIVE_UNACKNOWLEDGED, shelved_until=NOW + timedelta(hours=1))
    assert apply(shelved, Action.REMOVE_FROM_SERVICE, now=NOW).shelved_until is None


@pytest.mark.parametrize(
    "action",
    [Action.SHELVE, Action.UNSHELVE, Action.SUPPRESS, Action.UNSUPPRESS, Action.REMOVE_FROM_SERVICE],
)
def test_overlays_are_refused_on_closed_alarms(action: Action) -> None:
    with pytest.raises(TransitionRefusedError, match="closed"):
        apply(AlarmStatus(state=S.CLOSED), action, now=NOW, shelve_until=NOW + timedelta(hours=1))


def test_comments_are_allowed_in_every_state() -> None:
    for state in AlarmState:
        assert apply(AlarmStatus(state=state), Action.COMMENT, now=NOW).state == state
