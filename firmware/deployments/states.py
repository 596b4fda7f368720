"""The per-gateway action state machine, as pure data and functions.

    scheduled -> assigned -> downloading -> downloaded -> installing -> rebooting -> success
                                                                      \\-> failed | rolled back
    (server side: canceled, timed out; a retry takes failed/timed out back to scheduled)

Agent steps (docs/protocol/uplink.md 3.4) map onto states; a step that is not allowed from the
current state is refused (out of order), never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.core import protocol_schemas
from fleet.core.protocol_schemas import check_vocabulary

from .models import ActionState as S

TERMINAL = frozenset({S.SUCCESS, S.FAILED, S.ROLLED_BACK, S.CANCELED, S.TIMED_OUT})
# The gateway holds the new assignment and may be working on it.
IN_FLIGHT = frozenset({S.ASSIGNED, S.DOWNLOADING, S.DOWNLOADED, S.INSTALLING, S.REBOOTING})
# Past the point of no return: the agent is changing the system; cancel lets these finish.
INSTALLING = frozenset({S.INSTALLING, S.REBOOTING})
# Count against the failure threshold.
FAILURES = frozenset({S.FAILED, S.ROLLED_BACK, S.TIMED_OUT})
ACTIVE = frozenset(S) - TERMINAL

# step -> (state it leads to, states it may come from). `deferred` keeps the state.
STEPS: dict[str, tuple[S | None, frozenset[S]]] = {
    "downloading": (S.DOWNLOADING, frozenset({S.ASSIGNED, S.DOWNLOADING})),
    "downloaded": (S.DOWNLOADED, frozenset({S.ASSIGNED, S.DOWNLOADING, S.DOWNLOADED})),
    "deferred": (None, frozenset({S.ASSIGNED, S.DOWNLOADING, S.DOWNLOADED})),
    # From `assigned`: the agent had the bundle cached and reports no download.
    "installing": (S.INSTALLING, frozenset({S.ASSIGNED, S.DOWNLOADED, S.INSTALLING})),
    "rebooting": (S.REBOOTING, frozenset({S.INSTALLING, S.REBOOTING})),
    # The agent's commit after the reboot, before the health check settles: still rebooting.
    "committing": (S.REBOOTING, frozenset({S.REBOOTING})),
    "success": (S.SUCCESS, frozenset({S.INSTALLING, S.REBOOTING})),
    "failure": (S.FAILED, IN_FLIGHT),
    "rolled_back": (S.ROLLED_BACK, frozenset({S.INSTALLING, S.REBOOTING})),
}


check_vocabulary("update status steps", STEPS, protocol_schemas.STATUS_STEPS, ordered=False)


@dataclass(frozen=True)
class StepResult:
    """`state` is the new state (None when refused); `duplicate` when the report repeats a final step."""

    state: S | None
    refusal: str = ""
    duplicate: bool = False


def apply_step(state: S, step: str) -> StepResult:
    if step not in STEPS:
        return StepResult(None, f"unknown step {step!r}; one of {', '.join(STEPS)}")
    target, sources = STEPS[step]
    if target is not None and state == target and state in TERMINAL:
        return StepResult(state, duplicate=True)
    if state not in sources:
        return StepResult(None, f"step {step!r} is out of order in state {state.value!r}")
    return StepResult(target or state)
