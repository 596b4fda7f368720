"""State changes of deployments: agent reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonschema
from django.db import transaction

from firmware.deployments.models import ActionEvent, GatewayAction
from firmware.deployments.states import TERMINAL, apply_step
from fleet.core import protocol_schemas
from fleet.inventory.models import Gateway

from ._common import WINDOW_GRACE, S
from .assignment import _fail, _install_deadline, conditions_for
from .rollout import _check_failure_threshold

logger = logging.getLogger(__name__)

# The published status schema, except that any short `step` passes it: the state machine refuses
# a step it does not know as out of order, naming the steps it does (states.apply_step).
_STATUS_SCHEMA = protocol_schemas.schema("status")
REPORT_SCHEMA: dict[str, Any] = {
    **_STATUS_SCHEMA,
    "properties": {**_STATUS_SCHEMA["properties"], "step": {"type": "string", "maxLength": 32}},
}


@dataclass(frozen=True)
class ReportOutcome:
    accepted: bool
    code: str = "ok"
    message: str = ""
    state: str | None = None


def _refuse(
    gateway: Gateway, action: GatewayAction | None, report: Any, now: datetime, *, code: str, message: str
) -> ReportOutcome:
    logger.warning("deployment report from %s refused (%s): %s", gateway.serial, code, message)
    ActionEvent.objects.create(
        action=action,
        gateway=gateway,
        at=now,
        source=ActionEvent.Source.AGENT,
        from_state=action.state if action else "",
        to_state=action.state if action else "",
        step=str(report.get("step", ""))[:32] if isinstance(report, dict) else "",
        accepted=False,
        message=f"{code}: {message}",
        report=report if isinstance(report, dict) else {"raw": repr(report)[:500]},
    )
    return ReportOutcome(False, code, message, action.state if action else None)


def _move(action: GatewayAction, state: S, *, step: str, report: dict[str, Any], now: datetime) -> str:
    """Move the action to `state` after a step other than a failure; the history text."""
    text = step
    if step == "deferred":
        text = f"deferred: {report.get('code', '')} {report.get('message', '')}".strip()
    if state != action.state:
        action.state_changed = now
    action.state = state
    action.progress = 100.0 if state == S.SUCCESS else report.get("progress", action.progress)
    if state == S.SUCCESS:
        action.deadline = None
        text = f"success: {report.get('version', action.artifact.version)} running"
    else:
        action.deadline = _install_deadline(action, now)
    return text


@transaction.atomic
def apply_gateway_report(
    *, gateway: Gateway, report: dict[str, Any], now: datetime, reported_at: datetime | None = None
) -> ReportOutcome:
    """Validate one `status` payload (docs/protocol/uplink.md 3.4) and move the gateway's action.

    Refused reports (malformed, unknown deployment, out of order, installing outside the window)
    change nothing, are logged and kept in the gateway's deployment history; the outcome says why.
    `reported_at` is the record's `ts` (when it happened on the gateway); default `now`.
    """
    try:
        jsonschema.validate(report, REPORT_SCHEMA)
    except jsonschema.ValidationError as e:
        return _refuse(gateway, None, report, now, code="invalid_report", message=e.message)
    ref, step = str(report["deployment"]), report["step"]
    action = None
    if ref.isdigit():
        action = (
            GatewayAction.objects.select_for_update(of=("self",))
            .select_related("deployment", "gateway__site", "artifact")
            .filter(deployment_id=int(ref), gateway=gateway)
            .first()
        )
    if action is None:
        return _refuse(
            gateway, None, report, now, code="unknown_deployment", message=f"gateway is not part of deployment {ref!r}"
        )
    result = apply_step(S(action.state), step)
    if result.state is None:
        return _refuse(gateway, action, report, now, code="out_of_order", message=result.refusal)
    if result.duplicate:
        return ReportOutcome(True, "duplicate", "repeats the final report", action.state)
    at = reported_at or now
    if result.state == S.INSTALLING and action.state != S.INSTALLING:
        conditions = conditions_for(action.deployment, gateway)
        if all(conditions.blocked_by(t) for t in (at - WINDOW_GRACE, at, at + WINDOW_GRACE)):
            return _refuse(gateway, action, report, now, code="outside_window", message=str(conditions.blocked_by(at)))
    before = action.state
    if step in {"failure", "rolled_back"}:
        text = _fail(
            action,
            result.state,
            code=report.get("code") or step,
            message=report.get("message", ""),
            now=now,
            log=report.get("log_excerpt", ""),
        )
    else:
        text = _move(action, result.state, step=step, report=report, now=now)
    action.save()
    ActionEvent.objects.create(
        action=action,
        gateway=gateway,
        at=now,
        source=ActionEvent.Source.AGENT,
        from_state=before,
        to_state=action.state,
        step=step,
        message=text,
        report=report,
    )
    if action.state in TERMINAL:
        _check_failure_threshold(action.deployment)
    return ReportOutcome(True, "ok", text, action.state)
