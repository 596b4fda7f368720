"""When an assigned bundle may be installed: ``install`` conditions of docs/protocol/updates.md.

``{"not_before": RFC 3339 | null, "window": {"start": "HH:MM", "end": "HH:MM", "timezone": IANA} | null,
"sun_down": bool}``. Downloading may happen at any time; installing only when every condition holds.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _hhmm(value: Any, name: str) -> time:
    if not isinstance(value, str):
        raise ValueError(f"install window {name} must be HH:MM")
    return time.fromisoformat(value)


def install_blocked_by(conditions: dict[str, Any] | None, now: datetime) -> str | None:
    """Why the install must wait (a message for the ``deferred`` report), or None to go ahead.

    ``now`` must be timezone-aware.
    """
    if not conditions:
        return None
    if not_before := conditions.get("not_before"):
        if now < datetime.fromisoformat(str(not_before).replace("Z", "+00:00")):
            return f"not before {not_before}"
    if window := conditions.get("window"):
        try:
            zone = ZoneInfo(window["timezone"])
        except (KeyError, ZoneInfoNotFoundError) as e:
            return f"maintenance window has an unknown time zone: {e}"
        opens, closes = _hhmm(window.get("start"), "start"), _hhmm(window.get("end"), "end")
        local = now.astimezone(zone).time().replace(tzinfo=None)
        # A window may cross midnight (22:00-02:00).
        inside = opens <= local < closes if opens <= closes else (local >= opens or local < closes)
        if not inside:
            return f"outside the maintenance window {window['start']}-{window['end']} {window['timezone']}"
    if conditions.get("sun_down"):
        # The agent does not know its site's coordinates, so it cannot compute sunset; it waits
        # rather than install at an unsafe time.
        return "install restricted to sun-down hours, which this agent cannot determine"
    return None
