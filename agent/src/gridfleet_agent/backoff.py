"""Retry delays: exponential backoff with full jitter, and jittered poll intervals.

Full jitter (a uniform draw between 0 and the exponential cap) keeps thousands of gateways that
lost the server at the same moment from reconnecting in lock-step when it comes back.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, *, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Delay before the next attempt after one more failure."""
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.failures = 0


def jittered(interval: float, fraction: float, rng: random.Random | None = None) -> float:
    """``interval`` plus a random extra of up to ``fraction`` of it."""
    return interval * (1 + (rng or random).uniform(0, fraction))
