"""When an assigned bundle may be installed: ``install`` conditions of docs/protocol/updates.md.

``{"not_before": RFC 3339 | null, "window": {"start": "HH:MM", "end": "HH:MM", "timezone": IANA} | null,
"sun_down": bool, "location": {"latitude", "longitude"}}``. Downloading may happen at any time;
installing only when every condition holds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time
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
    not_before = conditions.get("not_before")
    if not_before and now < datetime.fromisoformat(str(not_before).replace("Z", "+00:00")):
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
        location = conditions.get("location") or {}
        latitude, longitude = location.get("latitude"), location.get("longitude")
        if not isinstance(latitude, int | float) or not isinstance(longitude, int | float):
            # Without the site's position the agent cannot tell; it waits rather than guess.
            return "the sun-down rule came without the site's latitude and longitude"
        if solar_elevation(latitude, longitude, now) > SUN_DOWN_ELEVATION:
            return "the sun is up at the site"
    return None


SUN_DOWN_ELEVATION = -0.833
"""Degrees: the sun's centre this far below the horizon is sunset (refraction and the disc's radius)."""


def solar_elevation(latitude: float, longitude: float, when: datetime) -> float:
    """The sun's elevation in degrees (no refraction), by NOAA's solar position equations.

    Accurate to about 0.1 degree, which is a minute or so of sunrise or sunset: plenty for "do not
    install while the inverters produce". Written out to keep the agent free of an astronomy package.
    """
    t = when.astimezone(UTC)
    century = (t.timestamp() / 86400 + 2440587.5 - 2451545.0) / 36525
    mean_longitude = (280.46646 + century * (36000.76983 + century * 0.0003032)) % 360
    anomaly = math.radians(357.52911 + century * (35999.05029 - 0.0001537 * century))
    eccentricity = 0.016708634 - century * (0.000042037 + 0.0000001267 * century)
    centre = (
        math.sin(anomaly) * (1.914602 - century * (0.004817 + 0.000014 * century))
        + math.sin(2 * anomaly) * (0.019993 - 0.000101 * century)
        + math.sin(3 * anomaly) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * century)
    apparent_longitude = math.radians(mean_longitude + centre - 0.00569 - 0.00478 * math.sin(omega))
    mean_obliquity = 23 + (26 + (21.448 - century * (46.815 + century * (0.00059 - century * 0.001813))) / 60) / 60
    obliquity = math.radians(mean_obliquity + 0.00256 * math.cos(omega))
    declination = math.asin(math.sin(obliquity) * math.sin(apparent_longitude))
    y = math.tan(obliquity / 2) ** 2
    l0 = math.radians(mean_longitude)
    equation_of_time = 4 * math.degrees(
        y * math.sin(2 * l0)
        - 2 * eccentricity * math.sin(anomaly)
        + 4 * eccentricity * y * math.sin(anomaly) * math.cos(2 * l0)
        - 0.5 * y * y * math.sin(4 * l0)
        - 1.25 * eccentricity * eccentricity * math.sin(2 * anomaly)
    )  # minutes
    minutes = t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6
    hour_angle = math.radians(((minutes + equation_of_time + 4 * longitude) % 1440) / 4 - 180)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)
    return 90 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))
