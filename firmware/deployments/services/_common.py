"""Constants and helpers shared by the services service modules."""

from __future__ import annotations

from datetime import timedelta

from firmware.deployments.models import ActionState

S = ActionState
BATCH = 2000
PRE_INSTALL = frozenset({S.ASSIGNED, S.DOWNLOADING, S.DOWNLOADED})
# Clock difference tolerated between agent and server at the edges of an install window.
WINDOW_GRACE = timedelta(minutes=5)
RATE_PERIOD = timedelta(minutes=1)
