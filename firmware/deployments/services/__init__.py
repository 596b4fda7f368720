"""State changes of deployments: create, operate, drive the rollout, apply agent reports.

Every function takes `now` (time is injected; nothing here sleeps or reads the clock) and runs in
one transaction. Assignments change only through `firmware.services.assign` / `unassign`, which
re-sign the gateways' hash bins; this module decides who gets what and when.
"""

from ._common import BATCH, PRE_INSTALL, RATE_PERIOD, WINDOW_GRACE
from .assignment import Previous, conditions_for
from .operations import OPERATIONS, approve_phase, cancel, operate, pause, resume, retry_failed, rollback
from .planning import ACTION_COLUMNS, Evaluation, create_deployment, evaluate, preview
from .reports import REPORT_SCHEMA, ReportOutcome, apply_gateway_report
from .rollout import run_rollouts

__all__ = [
    "ACTION_COLUMNS",
    "BATCH",
    "OPERATIONS",
    "PRE_INSTALL",
    "RATE_PERIOD",
    "REPORT_SCHEMA",
    "WINDOW_GRACE",
    "Evaluation",
    "Previous",
    "ReportOutcome",
    "apply_gateway_report",
    "approve_phase",
    "cancel",
    "conditions_for",
    "create_deployment",
    "evaluate",
    "operate",
    "pause",
    "preview",
    "resume",
    "retry_failed",
    "rollback",
    "run_rollouts",
]
