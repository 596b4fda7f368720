"""Debounce and raise/clear rules for event bits and communication loss."""

from __future__ import annotations

from gridfleet_agent.field.alarms import CommLossTracker, EventAlarmTracker
from gridfleet_agent.field.events import EVENT_BITS, Severity


def transitions(tracker: EventAlarmTracker, *polls: int | None) -> list[list[tuple[str, bool]]]:
    return [[(t.definition.code, t.raised) for t in tracker.update(bits)] for bits in polls]


def started(debounce: int) -> EventAlarmTracker:
    """A tracker past its start-up resync (one quiet poll)."""
    tracker = EventAlarmTracker(debounce)
    tracker.update(0)
    return tracker


def test_the_first_reading_clears_every_standard_bit_that_is_not_set() -> None:
    tracker = EventAlarmTracker(debounce=2)
    (first,) = transitions(tracker, 1 << 7)
    assert len(first) == 16 and not any(raised for _, raised in first)
    assert ("sunspec.evt1.over_temperature", False) not in first
    assert transitions(tracker, 1 << 7) == [[("sunspec.evt1.over_temperature", True)]]


def test_a_bit_raises_only_after_it_is_seen_set_for_the_debounce_count() -> None:
    tracker = started(debounce=2)
    assert transitions(tracker, 0b1, 0b1, 0b1) == [[], [("sunspec.evt1.ground_fault", True)], []]
    assert tracker.active == {0}


def test_a_bit_clears_only_after_it_is_seen_clear_for_the_debounce_count() -> None:
    tracker = started(debounce=2)
    transitions(tracker, 0b10, 0b10)
    assert transitions(tracker, 0, 0) == [[], [("sunspec.evt1.dc_over_voltage", False)]]


def test_a_chattering_bit_neither_raises_nor_clears() -> None:
    tracker = started(debounce=2)
    assert transitions(tracker, 1 << 7, 0, 1 << 7, 0) == [[], [], [], []]
    assert tracker.active == set()


def test_an_unreadable_bitfield_changes_nothing() -> None:
    tracker = started(debounce=1)
    transitions(tracker, 1 << 4)
    assert transitions(tracker, None, None) == [[], []]
    assert tracker.active == {4}


def test_reserved_bits_still_raise_an_indeterminate_alarm() -> None:
    (transition,) = started(debounce=1).update(1 << 20)
    assert (transition.definition.code, transition.definition.severity) == (
        "sunspec.evt1.bit_20",
        Severity.INDETERMINATE,
    )


def test_every_standard_bit_has_its_own_code() -> None:
    assert sorted(EVENT_BITS) == list(range(17))
    assert len({d.code for d in EVENT_BITS.values()}) == 17


def test_comm_loss_raises_after_the_threshold_and_clears_on_the_first_good_poll() -> None:
    tracker = CommLossTracker(threshold=3)
    tracker.succeeded()  # the start-up resync clear
    assert [tracker.failed() is not None for _ in range(5)] == [False, False, True, False, False]
    cleared = tracker.succeeded()
    assert cleared is not None and not cleared.raised and cleared.definition.code == "field.comms_lost"
    assert tracker.succeeded() is None


def test_the_first_good_poll_after_start_clears_comm_loss_even_if_it_was_never_raised_here() -> None:
    tracker = CommLossTracker(threshold=3)
    cleared = tracker.succeeded()
    assert cleared is not None and not cleared.raised
    assert tracker.succeeded() is None
