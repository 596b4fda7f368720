"""Install conditions from the assignment: not_before, maintenance window, sun_down."""

from __future__ import annotations

from datetime import UTC, datetime

import astral.sun
import pytest
from astral import Observer
from gridfleet_agent.schedule import install_blocked_by, solar_elevation

LA_WINDOW = {"window": {"start": "01:00", "end": "04:00", "timezone": "America/Los_Angeles"}}
CROSSING_MIDNIGHT = {"window": {"start": "22:00", "end": "02:00", "timezone": "UTC"}}


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 26, hour, minute, tzinfo=UTC)


def test_no_conditions_means_install_now():
    assert install_blocked_by(None, utc(12)) is None


def test_not_before_holds_the_install_until_then():
    conditions = {"not_before": "2026-11-26T13:00:00Z"}
    assert install_blocked_by(conditions, utc(12, 59)) == "not before 2026-11-26T13:00:00Z"
    assert install_blocked_by(conditions, utc(13)) is None


@pytest.mark.parametrize(("hour", "allowed"), [(9, True), (11, True), (12, False), (8, False)])
def test_window_is_local_wall_clock_time(hour: int, allowed: bool):
    # 01:00-04:00 in Los Angeles (UTC-8 in November) is 09:00-12:00 UTC.
    assert (install_blocked_by(LA_WINDOW, utc(hour)) is None) is allowed


@pytest.mark.parametrize(("hour", "allowed"), [(23, True), (1, True), (2, False), (12, False)])
def test_window_may_cross_midnight(hour: int, allowed: bool):
    assert (install_blocked_by(CROSSING_MIDNIGHT, utc(hour)) is None) is allowed


FRESNO = {"latitude": 36.74, "longitude": -119.79}


@pytest.mark.parametrize(
    ("hour", "allowed"),
    # 26 Nov in Fresno: sunrise about 14:45 UTC, sunset about 00:45 UTC.
    [(13, True), (3, True), (15, False), (20, False), (0, False)],
)
def test_sun_down_allows_installs_only_between_sunset_and_sunrise_at_the_site(hour: int, allowed: bool):
    conditions = {"sun_down": True, "location": FRESNO}
    assert (install_blocked_by(conditions, utc(hour)) is None) is allowed


def test_sun_down_without_the_site_position_waits():
    assert "latitude and longitude" in (install_blocked_by({"sun_down": True}, utc(2)) or "")


@pytest.mark.parametrize("when", [utc(h, m) for h in range(0, 24, 3) for m in (0, 37)])
@pytest.mark.parametrize(("latitude", "longitude"), [(36.74, -119.79), (-33.87, 151.21), (64.15, -21.94)])
def test_solar_elevation_agrees_with_the_astral_package(when: datetime, latitude: float, longitude: float):
    expected = astral.sun.elevation(Observer(latitude, longitude), when, with_refraction=False)
    assert solar_elevation(latitude, longitude, when) == pytest.approx(expected, abs=0.1)
