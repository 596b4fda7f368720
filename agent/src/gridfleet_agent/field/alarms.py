"""Debounced raise/clear decisions for one device's event bits and its communication state.

Pure logic, no I/O: the poller feeds each poll's outcome in and gets transitions back.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridfleet_agent.field.events import COMM_LOSS, EVENT_SOURCES, EventDefinition, EventSource

BITFIELD_WIDTH = 32


@dataclass(frozen=True)
class AlarmTransition:
    definition: EventDefinition
    raised: bool  # False: cleared


class EventAlarmTracker:
    """A bit raises its alarm after `debounce` consecutive polls with it set, and clears it
    after `debounce` consecutive polls with it clear. A chattering bit changes nothing.

    The first readable bitfield also clears every standard bit that is not set: alarm state
    lives in memory, so after an agent restart this is how a fault that went away meanwhile
    gets cleared on the server (which ignores clears of alarms that are not open).
    """

    def __init__(self, debounce: int, source: EventSource = EVENT_SOURCES[0]) -> None:
        if debounce < 1:
            raise ValueError("debounce must be at least 1 poll")
        self.debounce = debounce
        self.source = source
        self.active: set[int] = set()
        self._streak: dict[int, int] = {}  # bit -> consecutive polls disagreeing with its state
        self._synced = False

    def update(self, bits: int | None) -> list[AlarmTransition]:
        """Feed one poll's bitfield; None (not implemented or unread) changes nothing."""
        if bits is None:
            return []
        transitions: list[AlarmTransition] = []
        if not self._synced:
            self._synced = True
            transitions += [
                AlarmTransition(d, raised=False) for bit, d in self.source.bits.items() if not bits >> bit & 1
            ]
        for bit in range(BITFIELD_WIDTH):
            is_set = bool(bits >> bit & 1)
            if is_set == (bit in self.active):
                self._streak.pop(bit, None)
                continue
            self._streak[bit] = self._streak.get(bit, 0) + 1
            if self._streak[bit] >= self.debounce:
                del self._streak[bit]
                if is_set:
                    self.active.add(bit)
                else:
                    self.active.discard(bit)
                transitions.append(AlarmTransition(self.source.definition(bit), raised=is_set))
        return transitions


class CommLossTracker:
    """Raises after `threshold` consecutive failed polls; clears on the first good one (and
    the first good one after start always sends a clear, for the same reason as above)."""

    def __init__(self, threshold: int) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1 poll")
        self.threshold = threshold
        self.failures = 0
        self.active = False
        self._synced = False

    def failed(self) -> AlarmTransition | None:
        self.failures += 1
        if not self.active and self.failures >= self.threshold:
            self.active = True
            return AlarmTransition(COMM_LOSS, raised=True)
        return None

    def succeeded(self) -> AlarmTransition | None:
        self.failures = 0
        if self.active or not self._synced:
            self.active, self._synced = False, True
            return AlarmTransition(COMM_LOSS, raised=False)
        return None
