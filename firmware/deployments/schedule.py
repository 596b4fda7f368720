"""Pure rollout arithmetic: phase sizes and when a site may install (window, sun down).

The install conditions travel to the agent in the assignment (`install` entry, see
docs/protocol/updates.md); the server uses the same rules to arm timeouts and to refuse an
`installing` report that comes outside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import elevation

# The sun's centre is below the horizon, refraction included (the usual sunrise/sunset angle).
SUN_DOWN_ELEVATION = -0.833
# How far ahead `next_install_opening` looks, and in what steps, before giving up.
OPENING_HORIZON = timedelta(days=2)
OPENING_STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class PhaseSize:
    """Cumulative size of a phase: a percentage of the eligible gateways, or a number of them."""

    percent: int | None = None
    count: int | None = None


def phase_boundaries(sizes: Sequence[PhaseSize], total: int) -> list[int]:
    """How many gateways have started by the end of each phase. The last phase takes the rest,
    and every phase gets at least one gateway while there are gateways left."""
    ends: list[int] = []
    previous = 0
    for i, size in enumerate(sizes):
        if i == len(sizes) - 1:
            end = total
        elif size.percent is not None:
            end = math.ceil(size.percent * total / 100)
        else:
            end = size.count or 0
        end = min(total, max(end, min(previous + 1, total)))
        ends.append(end)
        previous = end
    return ends


@dataclass(frozen=True)
class InstallConditions:
    """When a gateway may install: a local wall-clock window and/or only while the sun is down."""

    timezone: str = "UTC"
    window_start: time | None = None
    window_end: time | None = None
    sun_down: bool = False
    latitude: float | None = None
    longitude: float | None = None

    @property
    def unconditional(self) -> bool:
        return self.window_start is None and not self.sun_down

    def as_assignment(self) -> dict[str, Any] | None:
        """The `install` entry of the assignment document (None: install as soon as downloaded)."""
        if self.unconditional:
            return None
        window = None
        if self.window_start is not None and self.window_end is not None:
            window = {
                "start": self.window_start.strftime("%H:%M"),
                "end": self.window_end.strftime("%H:%M"),
                "timezone": self.timezone,
            }
        entry: dict[str, Any] = {"not_before": None, "window": window, "sun_down": self.sun_down}
        if self.sun_down:
            # The agent needs the site's position to know when the sun is down.
            entry["location"] = {"latitude": self.latitude, "longitude": self.longitude}
        return entry

    def blocked_by(self, now: datetime) -> str | None:
        """Why an install must wait at `now` (aware), or None when it may go ahead."""
        if self.window_start is not None and self.window_end is not None:
            local = now.astimezone(ZoneInfo(self.timezone)).time().replace(tzinfo=None)
            start, end = self.window_start, self.window_end
            inside = start <= local < end if start <= end else (local >= start or local < end)
            if not inside:
                return (
                    f"outside the maintenance window {start:%H:%M}-{end:%H:%M} {self.timezone} "
                    f"(local time {local:%H:%M})"
                )
        if self.sun_down:
            if self.latitude is None or self.longitude is None:
                return "the sun-down rule needs the site's latitude and longitude"
            if elevation(Observer(self.latitude, self.longitude), now) > SUN_DOWN_ELEVATION:
                return "the sun is up at the site"
        return None

    def next_opening(self, now: datetime) -> datetime | None:
        """The first moment at or after `now` when an install may start (None: not within 2 days)."""
        moment = now
        while moment <= now + OPENING_HORIZON:
            if self.blocked_by(moment) is None:
                return moment
            moment += OPENING_STEP
        return None
