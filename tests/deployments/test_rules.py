"""The pure rules underneath: phase sizes, install conditions, the step table."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from firmware.deployments.models import ActionState as S
from firmware.deployments.schedule import InstallConditions, PhaseSize, phase_boundaries
from firmware.deployments.states import STEPS, TERMINAL, apply_step
from tests.conftest import NOON_PACIFIC


@pytest.mark.parametrize(
    ("sizes", "total", "ends"),
    [
        (
            [PhaseSize(percent=1), PhaseSize(percent=10), PhaseSize(percent=50), PhaseSize(percent=100)],
            1000,
            [10, 100, 500, 1000],
        ),
        ([PhaseSize(percent=1), PhaseSize(percent=100)], 7, [1, 7]),  # a canary gets at least one gateway
        ([PhaseSize(count=5), PhaseSize(count=50), PhaseSize(percent=60)], 30, [5, 30, 30]),  # last takes the rest
        ([PhaseSize(percent=10), PhaseSize(percent=20)], 0, [0, 0]),
    ],
)
def test_phase_boundaries_are_cumulative(sizes, total, ends):
    assert phase_boundaries(sizes, total) == ends


def la(hour: int, minute: int = 0) -> datetime:
    """A late-November wall-clock time in Los Angeles (UTC-8), as UTC."""
    return NOON_PACIFIC.replace(hour=(hour + 8) % 24, minute=minute) + timedelta(days=(hour + 8) // 24)


def test_window_is_read_in_the_site_time_zone_and_may_cross_midnight():
    overnight = InstallConditions(timezone="America/Los_Angeles", window_start=time(22), window_end=time(2))
    assert overnight.blocked_by(la(23)) is None
    assert overnight.blocked_by(la(1, 59)) is None
    assert "22:00-02:00" in str(overnight.blocked_by(la(2)))
    assert overnight.blocked_by(la(12)) is not None
    assert overnight.next_opening(la(12)) == la(22)


def test_sun_down_uses_the_sun_elevation_at_the_site():
    fresno = InstallConditions(sun_down=True, latitude=36.74, longitude=-119.79)
    assert fresno.blocked_by(la(12)) == "the sun is up at the site"
    assert fresno.blocked_by(la(23)) is None
    assert "latitude" in str(InstallConditions(sun_down=True).blocked_by(la(23)))
    assert InstallConditions().as_assignment() is None


def test_every_final_state_refuses_further_steps_but_accepts_its_own_repeat():
    for state in TERMINAL:
        for step in STEPS:
            result = apply_step(state, step)
            if result.state is not None:
                assert result.duplicate and result.state == state
    assert apply_step(S.SCHEDULED, "downloading").state is None
    assert apply_step(S.DOWNLOADED, "deferred").state == S.DOWNLOADED
    assert apply_step(S.ASSIGNED, "installing").state == S.INSTALLING  # bundle already cached
