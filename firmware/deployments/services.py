"""State changes of deployments: create, operate, drive the rollout, apply agent reports.

Every function takes `now` (time is injected; nothing here sleeps or reads the clock) and runs in
one transaction. Assignments change only through `firmware.services.assign` / `unassign`, which
re-sign the gateways' hash bins; this module decides who gets what and when.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet, Value

from fleet.audit.services import record
from fleet.inventory.models import Gateway, Organization

from .. import services as firmware
from ..errors import ArtifactNotReleasedError, FirmwareError
from ..models import Artifact, ArtifactType, Assignment
from .errors import DeploymentError, InvalidPlanError, OperationNotAllowedError
from .models import ActionEvent, ActionState, Deployment, Exclusion, GatewayAction, RolloutPhase
from .plans import PhaseSpec, RolloutPlan, TargetSpec
from .schedule import InstallConditions, phase_boundaries
from .states import ACTIVE, FAILURES, IN_FLIGHT, INSTALLING, TERMINAL, apply_step

logger = logging.getLogger(__name__)

S = ActionState
BATCH = 2000
PRE_INSTALL = frozenset({S.ASSIGNED, S.DOWNLOADING, S.DOWNLOADED})
# Clock difference tolerated between agent and server at the edges of an install window.
WINDOW_GRACE = timedelta(minutes=5)
RATE_PERIOD = timedelta(minutes=1)


# ------------------------------------------------------------------ planning


@dataclass
class Evaluation:
    """Which targeted gateways get which artifact, which are excluded and why, phase by phase."""

    eligible: list[tuple[int, int]]  # (gateway id, artifact id) in rollout order
    exclusions: list[tuple[int, str, str]]  # (gateway id, reason, detail)
    boundaries: list[int]
    serials: dict[int, str]

    def phase_members(self, index: int) -> list[tuple[int, int]]:
        start = self.boundaries[index - 1] if index else 0
        return self.eligible[start : self.boundaries[index]]


def _check_artifacts(organization: Organization, artifacts: Sequence[Artifact]) -> str:
    if not artifacts:
        raise InvalidPlanError("Choose at least one artifact.", field="artifacts")
    types = {a.type for a in artifacts}
    if len(types) != 1:
        raise InvalidPlanError(
            "All artifacts of a deployment have one type (several builds of it for different hardware models).",
            field="artifacts",
        )
    if any(a.organization_id != organization.pk for a in artifacts):
        raise InvalidPlanError("An artifact belongs to another organization.", field="artifacts")
    seen: dict[str, Artifact] = {}
    for artifact in artifacts:
        for model in artifact.hardware_models:
            if model in seen:
                raise InvalidPlanError(
                    f"{seen[model]} and {artifact} both claim hardware model {model!r}; choose one.",
                    field="artifacts",
                )
            seen[model] = artifact
    return types.pop()


def _rollout_order(seed: str, gateway_id: int) -> str:
    # Stable and spread out: the canary is a sample of the fleet, not its oldest gateways.
    return hashlib.sha256(f"{seed}:{gateway_id}".encode()).hexdigest()


def evaluate(
    *,
    organization: Organization,
    artifacts: Sequence[Artifact],
    target: TargetSpec,
    plan: RolloutPlan,
    seed: str = "",
    gateways: QuerySet[Gateway] | None = None,
) -> Evaluation:
    """The compatibility check and the phase split, without writing anything (also the preview).

    `gateways` narrows the target (the newcomers of a dynamic group)."""
    plan.validate()
    target.validate(organization)
    _check_artifacts(organization, artifacts)
    by_model = {model: a.pk for a in artifacts for model in a.hardware_models}
    eligible: list[tuple[int, int]] = []
    exclusions: list[tuple[int, str, str]] = []
    serials: dict[int, str] = {}
    members = target.members(organization) if gateways is None else gateways
    rows = members.order_by().values_list(
        "id", "serial", "hardware_model", "status", "site_id", "site__latitude", "site__longitude"
    )
    for gateway_id, serial, model, status, site_id, latitude, longitude in rows.iterator(chunk_size=BATCH):
        serials[gateway_id] = serial
        if status == Gateway.Status.DECOMMISSIONED:
            exclusions.append((gateway_id, Exclusion.Reason.DECOMMISSIONED, ""))
        elif model not in by_model:
            exclusions.append((gateway_id, Exclusion.Reason.INCOMPATIBLE, f"hardware model {model!r}"))
        elif plan.window_start is not None and site_id is None:
            exclusions.append((gateway_id, Exclusion.Reason.NO_LOCATION, "no site, so no time zone for the window"))
        elif plan.sun_down_only and (latitude is None or longitude is None):
            exclusions.append((gateway_id, Exclusion.Reason.NO_LOCATION, "site has no latitude/longitude"))
        else:
            eligible.append((gateway_id, by_model[model]))
    eligible.sort(key=lambda pair: _rollout_order(seed, pair[0]))
    boundaries = phase_boundaries([p.size for p in plan.phases], len(eligible))
    return Evaluation(eligible, exclusions, boundaries, serials)


def preview(
    *, organization: Organization, artifacts: Sequence[Artifact], target: TargetSpec, plan: RolloutPlan
) -> dict[str, Any]:
    """Gateways per phase (count and the first serials) and the excluded ones, for the create form."""
    ev = evaluate(organization=organization, artifacts=artifacts, target=target, plan=plan, seed="preview")
    phases = []
    for i, phase in enumerate(plan.phases):
        members = ev.phase_members(i)
        phases.append(
            {
                "name": phase.name,
                "size": f"{phase.percent}%" if phase.percent is not None else f"{phase.count} gateways",
                "gateways": len(members),
                "cumulative": ev.boundaries[i],
                "sample": [ev.serials[g] for g, _ in members[:10]],
            }
        )
    return {
        "eligible": len(ev.eligible),
        "phases": phases,
        "excluded": [
            {"serial": ev.serials[g], "reason": reason, "detail": detail} for g, reason, detail in ev.exclusions
        ],
    }


def _event(
    action: GatewayAction,
    *,
    at: datetime,
    source: str,
    to_state: str = "",
    message: str = "",
    from_state: str | None = None,
    step: str = "",
    accepted: bool = True,
    report: dict[str, Any] | None = None,
) -> ActionEvent:
    return ActionEvent(
        action=action,
        gateway_id=action.gateway_id,
        at=at,
        source=source,
        from_state=action.state if from_state is None else from_state,
        to_state=to_state or action.state,
        step=step,
        accepted=accepted,
        message=message,
        report=report,
    )


ACTION_COLUMNS = (
    "deployment_id",
    "phase_id",
    "gateway_id",
    "artifact_id",
    "state",
    "attempt",
    "state_changed",
    "cancel_requested",
    "failure_code",
    "failure_message",
    "log_excerpt",
    "jitter",
    "not_before",
)


def _write_actions(deployment: Deployment, phases: list[RolloutPhase], ev: Evaluation, now: datetime) -> None:
    """One action per eligible gateway; on PostgreSQL through COPY (a 100k fleet is 100k rows).

    Gateways of a phase that has started get their start time (phase start + jitter) right away."""
    rng = random.Random(f"{deployment.pk}:{now.isoformat()}")  # spreading load, not secrecy
    spread = deployment.jitter_seconds
    rows = []
    for i, phase in enumerate(phases):
        for gateway_id, artifact_id in ev.phase_members(i):
            jitter = timedelta(seconds=round(rng.uniform(0, spread), 3)) if spread else timedelta(0)
            start = now + jitter if phase.status != RolloutPhase.Status.PENDING else None
            rows.append(
                (
                    deployment.pk,
                    phase.pk,
                    gateway_id,
                    artifact_id,
                    S.SCHEDULED.value,
                    1,
                    now,
                    False,
                    "",
                    "",
                    "",
                    jitter,
                    start,
                )
            )
    if connection.vendor == "postgresql":
        table = GatewayAction._meta.db_table
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({', '.join(ACTION_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        GatewayAction.objects.bulk_create(
            [GatewayAction(**dict(zip(ACTION_COLUMNS, row, strict=True))) for row in rows], batch_size=BATCH
        )
    Exclusion.objects.bulk_create(
        [Exclusion(deployment=deployment, gateway_id=g, reason=r, detail=d) for g, r, d in ev.exclusions],
        batch_size=BATCH,
    )


def _supersede(new: Deployment, now: datetime) -> None:
    """One active deployment per gateway and artifact type: older actions for the same gateways end."""
    older = GatewayAction.objects.filter(
        gateway_id__in=GatewayAction.objects.filter(deployment=new).values("gateway_id"),
        deployment__organization=new.organization,
        deployment__artifact_type=new.artifact_type,
        deployment__status__in=Deployment.ACTIVE_STATUSES,
        state__in=ACTIVE,
    ).exclude(deployment=new)
    reason = f"superseded by deployment #{new.pk}"
    affected: Counter[int] = Counter()
    events = []
    for action in older.iterator(chunk_size=BATCH):
        affected[action.deployment_id] += 1
        events.append(_event(action, at=now, source=ActionEvent.Source.SERVER, to_state=S.CANCELED, message=reason))
    if not affected:
        return
    older.update(state=S.CANCELED, state_changed=now, superseded_by=new, failure_message=reason, deadline=None)
    ActionEvent.objects.bulk_create(events, batch_size=BATCH)
    for old in Deployment.objects.filter(pk__in=affected):
        done = not GatewayAction.objects.filter(deployment=old, state__in=ACTIVE).exists()
        if done:
            old.status, old.finished = Deployment.Status.SUPERSEDED, now
        old.superseded_by = new
        old.status_reason = f"{affected[old.pk]} gateway(s) {reason}" + ("" if not done else "; nothing left to do")
        old.save(update_fields=["status", "finished", "superseded_by", "status_reason"])
        record(action="deployment.superseded", target=old, detail={"by": new.pk, "gateways": affected[old.pk]})


@transaction.atomic
def create_deployment(
    *,
    organization: Organization,
    name: str,
    artifacts: Sequence[Artifact],
    target: TargetSpec,
    plan: RolloutPlan,
    include_new_gateways: bool = True,
    actor: Any,
    now: datetime,
    ip: str | None = None,
) -> Deployment:
    """Plan and start a deployment: actions for every compatible gateway, exclusions for the rest,
    older deployments of the same type superseded for these gateways, and the first phase started."""
    name = name.strip()
    if not name:
        raise InvalidPlanError("Name the deployment.", field="name")
    artifact_type = _check_artifacts(organization, artifacts)
    deployment = Deployment.objects.create(
        organization=organization,
        name=name,
        artifact_type=artifact_type,
        target_kind=target.kind,
        target_group=target.group,
        target_filter=target.filter,
        include_new_gateways=include_new_gateways,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        created=now,
        **plan.deployment_fields(),
    )
    deployment.artifacts.set(artifacts)
    if target.kind == Deployment.TargetKind.LIST:
        deployment.target_gateways.set(target.gateways)
    ev = evaluate(organization=organization, artifacts=artifacts, target=target, plan=plan, seed=str(deployment.pk))
    return _start(deployment, plan.phases, ev, actor=actor, now=now, ip=ip, action="deployment.create")


def _start(
    deployment: Deployment,
    specs: Sequence[PhaseSpec],
    ev: Evaluation,
    *,
    actor: Any,
    now: datetime,
    ip: str | None,
    action: str,
) -> Deployment:
    if not ev.eligible:
        raise InvalidPlanError(
            f"No gateway can take this deployment ({len(ev.exclusions)} targeted, all excluded).", field="target"
        )
    phases = RolloutPhase.objects.bulk_create(
        [
            RolloutPhase(
                deployment=deployment,
                index=i,
                name=p.name,
                percent=p.percent,
                count=p.count,
                min_soak=p.min_soak,
                auto_advance=p.auto_advance,
            )
            for i, p in enumerate(specs)
        ]
    )
    _start_phase(deployment, phases[0], now)
    _write_actions(deployment, phases, ev, now)
    _supersede(deployment, now)
    record(
        action=action,
        target=deployment,
        user=actor,
        ip=ip,
        detail={
            "artifacts": [str(a) for a in deployment.artifacts.all()],
            "gateways": len(ev.eligible),
            "excluded": len(ev.exclusions),
            "phases": [p.name for p in specs],
            "rollback_of": deployment.rollback_of_id,
        },
    )
    return deployment


def _start_phase(deployment: Deployment, phase: RolloutPhase, now: datetime) -> None:
    phase.status, phase.started = RolloutPhase.Status.RUNNING, now
    phase.save(update_fields=["status", "started"])
    GatewayAction.objects.filter(phase=phase, state=S.SCHEDULED).update(
        not_before=ExpressionWrapper(Value(now) + F("jitter"), output_field=DateTimeField())
    )


# ---------------------------------------------------------------- assignment


def conditions_for(deployment: Deployment, gateway: Gateway) -> InstallConditions:
    site = gateway.site
    return InstallConditions(
        timezone=site.timezone if site else "UTC",
        window_start=deployment.window_start,
        window_end=deployment.window_end,
        sun_down=deployment.sun_down_only,
        latitude=float(site.latitude) if site and site.latitude is not None else None,
        longitude=float(site.longitude) if site and site.longitude is not None else None,
    )


def _install_deadline(action: GatewayAction, now: datetime) -> datetime:
    """No progress for the timeout means timed out; waiting for the install window does not count."""
    start = now
    if action.state in PRE_INSTALL:
        conditions = conditions_for(action.deployment, action.gateway)
        if not conditions.unconditional:
            start = max(now, conditions.next_opening(now) or now)
    return start + action.deployment.gateway_timeout


Previous = tuple[dict[str, Any] | None, Artifact | None]


def _previous_of(gateways: Sequence[Gateway], deployment: Deployment) -> dict[int, Previous]:
    """What each gateway had of this type before (to restore on cancel, to roll back to)."""
    current = {
        a.gateway_id: a
        for a in Assignment.objects.filter(
            gateway__in=gateways, artifact_type=deployment.artifact_type, artifact__isnull=False
        ).select_related("artifact")
    }
    # Nothing assigned before: the firmware version the gateway reports, if we have that build for it.
    reported = {g.firmware_version for g in gateways if g.pk not in current}
    builds = (
        list(
            Artifact.objects.filter(
                organization=deployment.organization_id, type=ArtifactType.FIRMWARE, version__in=reported
            )
        )
        if deployment.artifact_type == ArtifactType.FIRMWARE and reported
        else []
    )
    found: dict[int, Previous] = {}
    for gateway in gateways:
        if (a := current.get(gateway.pk)) is not None:
            found[gateway.pk] = (
                {"artifact": a.artifact_id, "deployment": a.deployment, "install": a.install},
                a.artifact,
            )
        else:
            found[gateway.pk] = (
                None,
                next(
                    (
                        b
                        for b in builds
                        if b.version == gateway.firmware_version and b.is_compatible_with(gateway.hardware_model)
                    ),
                    None,
                ),
            )
    return found


def _previous_before_assigning(actions: Sequence[GatewayAction]) -> dict[int, Previous]:
    first_time = [a.gateway for a in actions if a.assigned_at is None]  # retries keep the first answer
    return _previous_of(first_time, actions[0].deployment) if first_time else {}


def _mark_assigned(actions: Sequence[GatewayAction], previous: dict[int, Previous], now: datetime) -> None:
    """Record the new state of actions whose assignment was just written, in bulk."""
    events = []
    for action in actions:
        if action.gateway_id in previous:
            action.previous_assignment, action.previous_artifact = previous[action.gateway_id]
        events.append(
            _event(
                action,
                at=now,
                source=ActionEvent.Source.SERVER,
                to_state=S.ASSIGNED,
                message=f"assigned {action.artifact} (attempt {action.attempt})",
            )
        )
        action.state, action.assigned_at, action.state_changed = S.ASSIGNED, now, now
        # Same site time zone and position within a group, so the same deadline.
        action.deadline = _install_deadline(action, now) if action is actions[0] else actions[0].deadline
    GatewayAction.objects.bulk_update(
        actions,
        ["state", "assigned_at", "state_changed", "deadline", "previous_assignment", "previous_artifact"],
        batch_size=BATCH,
    )
    ActionEvent.objects.bulk_create(events, batch_size=BATCH)


def _restore_previous(action: GatewayAction) -> str:
    """Give the gateway back what it had, unless a newer deployment already changed its assignment."""
    deployment, gateway = action.deployment, action.gateway
    current = Assignment.objects.filter(gateway=gateway, artifact_type=deployment.artifact_type).first()
    if current is None or current.deployment != str(deployment.pk):
        return "assignment already changed by a newer deployment"
    previous = action.previous_assignment
    if previous is None:
        firmware.unassign(gateway=gateway, artifact_type=deployment.artifact_type)
        return "assignment removed (nothing was assigned before); the gateway keeps what it runs"
    artifact = Artifact.objects.get(pk=previous["artifact"])
    firmware.assign(
        gateway=gateway,
        artifact_type=deployment.artifact_type,
        artifact=artifact,
        deployment=previous["deployment"],
        install=previous["install"],
    )
    return f"previous assignment {artifact} restored"


def _fail(action: GatewayAction, state: S, *, code: str, message: str, now: datetime, log: str = "") -> str:
    """A failure or a timeout: retry later while retries remain, else final. Returns the history text."""
    deployment = action.deployment
    action.failure_code, action.failure_message = code[:100], message
    if log:
        action.log_excerpt = log
    retry = (
        state in (S.FAILED, S.TIMED_OUT)
        and not action.cancel_requested
        and deployment.is_active
        and action.attempt <= deployment.max_retries
    )
    if retry:
        delay = deployment.retry_backoff * (2 ** (action.attempt - 1))
        action.state, action.not_before, action.deadline = S.SCHEDULED, now + delay, None
        action.attempt += 1
        text = f"{state.label.lower()}: {code}; retry {action.attempt - 1} of {deployment.max_retries} after {delay}"
    else:
        action.state, action.deadline = state, None
        text = f"{state.label.lower()}: {code} {message}".strip()
        if action.cancel_requested:
            text += "; " + _restore_previous(action)
    action.state_changed = now
    return text


# ------------------------------------------------------------- agent reports

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["deployment", "step"],
    "properties": {
        "deployment": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 64}, {"type": "integer"}]},
        "step": {"type": "string", "maxLength": 32},
        "bundle": {"type": "string", "maxLength": 500},
        "version": {"type": "string", "maxLength": 100},
        "code": {"type": "string", "maxLength": 100},
        "message": {"type": "string", "maxLength": 2000},
        "log_excerpt": {"type": "string", "maxLength": 16384},
        "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
    },
}


@dataclass(frozen=True)
class ReportOutcome:
    accepted: bool
    code: str = "ok"
    message: str = ""
    state: str | None = None


def _refuse(
    gateway: Gateway, action: GatewayAction | None, report: Any, now: datetime, code: str, message: str
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
        return _refuse(gateway, None, report, now, "invalid_report", e.message)
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
        return _refuse(gateway, None, report, now, "unknown_deployment", f"gateway is not part of deployment {ref!r}")
    result = apply_step(S(action.state), step)
    if result.state is None:
        return _refuse(gateway, action, report, now, "out_of_order", result.refusal)
    if result.duplicate:
        return ReportOutcome(True, "duplicate", "repeats the final report", action.state)
    at = reported_at or now
    if result.state == S.INSTALLING and action.state != S.INSTALLING:
        conditions = conditions_for(action.deployment, gateway)
        if all(conditions.blocked_by(t) for t in (at - WINDOW_GRACE, at, at + WINDOW_GRACE)):
            return _refuse(gateway, action, report, now, "outside_window", str(conditions.blocked_by(at)))
    before = action.state
    text = f"{step}"
    if step == "failure" or step == "rolled_back":
        text = _fail(
            action,
            result.state,
            code=report.get("code") or step,
            message=report.get("message", ""),
            now=now,
            log=report.get("log_excerpt", ""),
        )
    else:
        if step == "deferred":
            text = f"deferred: {report.get('code', '')} {report.get('message', '')}".strip()
        if result.state != action.state:
            action.state_changed = now
        action.state = result.state
        action.progress = 100.0 if result.state == S.SUCCESS else report.get("progress", action.progress)
        if result.state == S.SUCCESS:
            action.deadline = None
            text = f"success: {report.get('version', action.artifact.version)} running"
        else:
            action.deadline = _install_deadline(action, now)
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


# -------------------------------------------------------------- the rollout


def _pause(deployment: Deployment, reason: str, *, actor: Any = None, ip: str | None = None) -> None:
    before = deployment.status
    deployment.status, deployment.status_reason = Deployment.Status.PAUSED, reason
    deployment.save(update_fields=["status", "status_reason"])
    record(
        action="deployment.pause",
        target=deployment,
        user=actor,
        ip=ip,
        before={"status": before},
        after={"status": deployment.status},
        detail={"reason": reason},
    )


def _check_failure_threshold(deployment: Deployment) -> bool:
    """Pause (with the reason) once failures cross the threshold after the minimum sample."""
    if deployment.status != Deployment.Status.RUNNING:
        return False
    finished = GatewayAction.objects.filter(deployment=deployment, state__in=TERMINAL - {S.CANCELED})
    sample = finished.count() - deployment.sample_baseline
    failures = finished.filter(state__in=FAILURES).count() - deployment.failure_baseline
    if sample < deployment.failure_min_sample or failures <= 0:
        return False
    pct = deployment.failure_threshold_pct
    count = deployment.failure_threshold_count
    over_count = count is not None and failures >= count
    over_pct = pct is not None and failures * 100 > pct * sample
    if not (over_count or over_pct):
        return False
    limit = f"{count} failures" if over_count else f"{pct}%"
    _pause(
        deployment,
        f"Paused automatically: {failures} of {sample} finished gateways failed "
        f"({round(100 * failures / sample)}%), over the threshold of {limit}.",
    )
    return True


def _current_phase(deployment: Deployment) -> RolloutPhase | None:
    return (
        deployment.phases.filter(status__in=[RolloutPhase.Status.RUNNING, RolloutPhase.Status.AWAITING_APPROVAL])
        .order_by("index")
        .first()
    )


def _advance(deployment: Deployment, now: datetime) -> None:
    phase = _current_phase(deployment)
    if phase is None or phase.status != RolloutPhase.Status.RUNNING:
        _finish_if_done(deployment, now)
        return
    members = GatewayAction.objects.filter(phase=phase).exclude(state=S.CANCELED)
    total = members.count()
    succeeded = members.filter(state=S.SUCCESS).count()
    if total and succeeded * 100 < deployment.success_threshold_pct * total:
        if not members.filter(state__in=ACTIVE).exists():
            _pause(
                deployment,
                f"Phase '{phase.name}' ended below the success threshold: {succeeded} of {total} succeeded "
                f"({round(100 * succeeded / total)}% < {deployment.success_threshold_pct}%).",
            )
        return
    if phase.threshold_reached is None:
        phase.threshold_reached = now
        phase.save(update_fields=["threshold_reached"])
    if now < phase.threshold_reached + phase.min_soak:
        return
    following = deployment.phases.filter(index=phase.index + 1).first()
    if following is not None and not phase.auto_advance:
        phase.status = RolloutPhase.Status.AWAITING_APPROVAL
        phase.save(update_fields=["status"])
        record(action="deployment.phase.awaiting_approval", target=deployment, detail={"phase": phase.name})
        return
    _complete_phase(deployment, phase, following, now)


def _complete_phase(deployment: Deployment, phase: RolloutPhase, following: RolloutPhase | None, now: datetime) -> None:
    phase.status, phase.completed = RolloutPhase.Status.COMPLETED, now
    phase.save(update_fields=["status", "completed", "approved_by"])
    record(action="deployment.phase.complete", target=deployment, detail={"phase": phase.name})
    if following is not None:
        _start_phase(deployment, following, now)
    else:
        _finish_if_done(deployment, now)


def _finish_if_done(deployment: Deployment, now: datetime) -> None:
    if deployment.phases.exclude(status=RolloutPhase.Status.COMPLETED).exists():
        return
    if GatewayAction.objects.filter(deployment=deployment, state__in=ACTIVE).exists():
        return
    deployment.status, deployment.finished = Deployment.Status.COMPLETED, now
    deployment.save(update_fields=["status", "finished"])
    record(action="deployment.complete", target=deployment)


def _include_new_gateways(deployment: Deployment, now: datetime) -> int:
    """Gateways that joined the group (or now match the filter) since the deployment started."""
    if not deployment.include_new_gateways or deployment.target_kind == Deployment.TargetKind.LIST:
        return 0
    phase = deployment.phases.exclude(status=RolloutPhase.Status.PENDING).order_by("-index").first()
    if phase is None:
        return 0
    target = TargetSpec.of(deployment)
    newcomers = (
        target.members(deployment.organization)
        .exclude(pk__in=GatewayAction.objects.filter(deployment=deployment).values("gateway_id"))
        .exclude(pk__in=deployment.exclusions.values("gateway_id"))
    )
    if not newcomers.exists():
        return 0
    ev = evaluate(
        organization=deployment.organization,
        artifacts=list(deployment.artifacts.all()),
        target=target,
        plan=_plan_of(deployment),
        seed=str(deployment.pk),
        gateways=newcomers,
    )
    if not ev.eligible and not ev.exclusions:
        return 0
    single = Evaluation(ev.eligible, ev.exclusions, [len(ev.eligible)], ev.serials)
    _write_actions(deployment, [phase], single, now)
    _supersede(deployment, now)
    if ev.eligible:
        record(
            action="deployment.gateways_joined",
            target=deployment,
            detail={"gateways": [ev.serials[g] for g, _ in ev.eligible[:50]], "count": len(ev.eligible)},
        )
    return len(ev.eligible)


def _plan_of(deployment: Deployment) -> RolloutPlan:
    return RolloutPlan(
        phases=tuple(
            PhaseSpec(p.name, p.percent, p.count, p.min_soak, p.auto_advance) for p in deployment.phases.all()
        ),
        **{k: getattr(deployment, k) for k in RolloutPlan().deployment_fields()},
    )


def _dispatch(deployment: Deployment, now: datetime) -> int:
    """Assign due gateways of started phases, within the rate limit.

    Gateways with the same artifact and install conditions (site time zone, position) are assigned
    together through `firmware.services.assign_many`; a batch it refuses (e.g. a gateway whose
    hardware model changed since planning) is retried gateway by gateway so only that one fails."""
    due = (
        GatewayAction.objects.filter(deployment=deployment, state=S.SCHEDULED, not_before__lte=now)
        .exclude(phase__status=RolloutPhase.Status.PENDING)
        .select_related("deployment__organization", "gateway__site", "gateway__organization", "artifact__organization")
        .order_by("not_before", "id")
    )
    if deployment.rate_limit_per_minute is not None:
        recent = GatewayAction.objects.filter(deployment=deployment, assigned_at__gt=now - RATE_PERIOD).count()
        due = due[: max(0, deployment.rate_limit_per_minute - recent)]
    groups: dict[tuple[int, str], tuple[dict[str, Any] | None, list[GatewayAction]]] = {}
    for action in due:
        install = conditions_for(deployment, action.gateway).as_assignment()
        key = (action.artifact_id, json.dumps(install, sort_keys=True))
        groups.setdefault(key, (install, []))[1].append(action)
    assigned = 0
    with transaction.atomic():
        for install, actions in groups.values():
            try:
                with transaction.atomic():
                    previous = _previous_before_assigning(actions)
                    firmware.assign_many(
                        gateways=[a.gateway for a in actions],
                        artifact=actions[0].artifact,
                        deployment=str(deployment.pk),
                        install=install,
                    )
                    _mark_assigned(actions, previous, now)
            except ArtifactNotReleasedError as e:
                _pause(deployment, f"Paused: {e}")
                break
            except FirmwareError:
                assigned += sum(_assign_one(action, install, now) for action in actions)
                continue
            assigned += len(actions)
    return assigned


def _assign_one(action: GatewayAction, install: dict[str, Any] | None, now: datetime) -> bool:
    try:
        with transaction.atomic():
            previous = _previous_before_assigning([action])
            firmware.assign(
                gateway=action.gateway,
                artifact_type=action.deployment.artifact_type,
                artifact=action.artifact,
                deployment=str(action.deployment.pk),
                install=install,
            )
            _mark_assigned([action], previous, now)
    except FirmwareError as e:
        action.refresh_from_db()
        text = _fail(action, S.FAILED, code=e.code, message=str(e), now=now)
        action.save()
        _event(action, at=now, source=ActionEvent.Source.SERVER, message=text).save()
        return False
    return True


def _expire_timeouts(now: datetime) -> int:
    expired = (
        GatewayAction.objects.select_for_update(of=("self",))
        .filter(state__in=IN_FLIGHT, deadline__lt=now)
        .select_related("deployment", "gateway__site", "artifact")
    )
    count = 0
    for action in expired:
        before = action.state
        text = _fail(
            action,
            S.TIMED_OUT,
            code="timeout",
            message=f"no progress in {before} for {action.deployment.gateway_timeout}",
            now=now,
        )
        action.save()
        _event(action, at=now, source=ActionEvent.Source.SERVER, from_state=before, message=text).save()
        count += 1
    return count


def run_rollouts(*, now: datetime) -> dict[str, int]:
    """The periodic driver (Celery beat / the embedded timer): timeouts, new gateways, thresholds,
    phase advance, then assignments. Each deployment in its own transaction."""
    with transaction.atomic():
        timed_out = _expire_timeouts(now)
    joined = assigned = 0
    for deployment_id in Deployment.objects.filter(status=Deployment.Status.RUNNING).values_list("id", flat=True):
        with transaction.atomic():
            deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
            if deployment.status != Deployment.Status.RUNNING:
                continue
            joined += _include_new_gateways(deployment, now)
            if _check_failure_threshold(deployment):
                continue
            _advance(deployment, now)
        if deployment.status == Deployment.Status.RUNNING:
            assigned += _dispatch(deployment, now)
    return {"timed_out": timed_out, "joined": joined, "assigned": assigned}


# ------------------------------------------------------------- operations


def _locked(deployment: Deployment) -> Deployment:
    return Deployment.objects.select_for_update().get(pk=deployment.pk)


@transaction.atomic
def pause(*, deployment: Deployment, reason: str = "", actor: Any, now: datetime, ip: str | None = None) -> Deployment:
    deployment = _locked(deployment)
    if deployment.status != Deployment.Status.RUNNING:
        raise OperationNotAllowedError(f"Only a running deployment can be paused; this one is {deployment.status}.")
    _pause(deployment, reason.strip() or f"Paused by {actor}", actor=actor, ip=ip)
    return deployment


@transaction.atomic
def resume(*, deployment: Deployment, actor: Any, now: datetime, ip: str | None = None) -> Deployment:
    """Continue; failures so far count as accepted, so the threshold applies to what comes next."""
    deployment = _locked(deployment)
    if deployment.status != Deployment.Status.PAUSED:
        raise OperationNotAllowedError(f"Only a paused deployment can be resumed; this one is {deployment.status}.")
    finished = GatewayAction.objects.filter(deployment=deployment, state__in=TERMINAL - {S.CANCELED})
    deployment.sample_baseline = finished.count()
    deployment.failure_baseline = finished.filter(state__in=FAILURES).count()
    deployment.status, deployment.status_reason = Deployment.Status.RUNNING, ""
    deployment.save(update_fields=["status", "status_reason", "sample_baseline", "failure_baseline"])
    record(
        action="deployment.resume",
        target=deployment,
        user=actor,
        ip=ip,
        before={"status": Deployment.Status.PAUSED},
        after={"status": deployment.status},
        detail={"accepted_failures": deployment.failure_baseline},
    )
    return deployment


def _cancel_actions(deployment: Deployment, reason: str, now: datetime) -> dict[str, int]:
    """Scheduled: canceled. Assigned but not installing: previous assignment restored, canceled.
    Installing or rebooting: left to finish (success keeps the new version; failure restores)."""
    tally: Counter[str] = Counter()
    actions = (
        GatewayAction.objects.select_for_update(of=("self",))
        .filter(deployment=deployment, state__in=ACTIVE)
        .select_related("deployment", "gateway__site", "gateway__organization", "artifact")
    )
    scheduled = actions.filter(state=S.SCHEDULED)
    events = [
        _event(a, at=now, source=ActionEvent.Source.OPERATOR, to_state=S.CANCELED, message=reason)
        for a in scheduled.iterator(chunk_size=BATCH)
    ]
    tally["canceled"] = scheduled.update(state=S.CANCELED, state_changed=now, failure_message=reason)
    ActionEvent.objects.bulk_create(events, batch_size=BATCH)
    for action in actions.filter(state__in=IN_FLIGHT):
        before = action.state
        if before in INSTALLING:
            action.cancel_requested = True
            text = f"{reason}; the install in progress finishes (success keeps it, failure restores)"
            tally["finishing"] += 1
        else:
            text = f"{reason}; {_restore_previous(action)}"
            action.state, action.state_changed, action.deadline = S.CANCELED, now, None
            action.failure_message = reason
            tally["canceled"] += 1
        action.save()
        _event(action, at=now, source=ActionEvent.Source.OPERATOR, from_state=before, message=text).save()
    return dict(tally)


@transaction.atomic
def cancel(*, deployment: Deployment, reason: str = "", actor: Any, now: datetime, ip: str | None = None) -> Deployment:
    deployment = _locked(deployment)
    if not deployment.is_active:
        raise OperationNotAllowedError(
            f"Only a running or paused deployment can be canceled; this one is {deployment.status}."
        )
    reason = reason.strip() or f"Canceled by {actor}"
    before = deployment.status
    deployment.status, deployment.status_reason, deployment.finished = Deployment.Status.CANCELED, reason, now
    deployment.save(update_fields=["status", "status_reason", "finished"])
    tally = _cancel_actions(deployment, reason, now)
    record(
        action="deployment.cancel",
        target=deployment,
        user=actor,
        ip=ip,
        before={"status": before},
        after={"status": deployment.status},
        detail={"reason": reason, **tally},
    )
    return deployment


@transaction.atomic
def retry_failed(*, deployment: Deployment, actor: Any, now: datetime, ip: str | None = None) -> int:
    """Schedule failed, rolled-back and timed-out gateways again (a completed deployment reopens)."""
    deployment = _locked(deployment)
    if deployment.status not in (*Deployment.ACTIVE_STATUSES, Deployment.Status.COMPLETED):
        raise OperationNotAllowedError(f"A {deployment.status} deployment cannot be retried.")
    failed = GatewayAction.objects.filter(deployment=deployment, state__in=FAILURES)
    events = [
        _event(
            a, at=now, source=ActionEvent.Source.OPERATOR, to_state=S.SCHEDULED, message=f"retry requested by {actor}"
        )
        for a in failed.iterator(chunk_size=BATCH)
    ]
    count = len(events)
    if not count:
        raise OperationNotAllowedError("No failed gateways to retry.")
    GatewayAction.objects.bulk_update(
        [_rescheduled(event.action, now) for event in events if event.action is not None],
        ["state", "attempt", "not_before", "deadline", "state_changed"],
        batch_size=BATCH,
    )
    ActionEvent.objects.bulk_create(events, batch_size=BATCH)
    if deployment.status == Deployment.Status.COMPLETED:
        deployment.status, deployment.finished = Deployment.Status.RUNNING, None
        deployment.save(update_fields=["status", "finished"])
    record(action="deployment.retry_failed", target=deployment, user=actor, ip=ip, detail={"gateways": count})
    return count


def _rescheduled(action: GatewayAction, now: datetime) -> GatewayAction:
    action.attempt += 1
    action.state, action.not_before, action.deadline, action.state_changed = S.SCHEDULED, now, None, now
    return action


@transaction.atomic
def approve_phase(*, deployment: Deployment, actor: Any, now: datetime, ip: str | None = None) -> RolloutPhase:
    """Operator approval of a phase that passed its thresholds and soak: the next phase starts."""
    deployment = _locked(deployment)
    phase = _current_phase(deployment)
    if phase is None or phase.status != RolloutPhase.Status.AWAITING_APPROVAL:
        raise OperationNotAllowedError("No phase is waiting for approval.")
    if deployment.status != Deployment.Status.RUNNING:
        raise OperationNotAllowedError(f"Resume the deployment first; it is {deployment.status}.")
    phase.approved_by = actor if getattr(actor, "is_authenticated", False) else None
    following = deployment.phases.filter(index=phase.index + 1).first()
    _complete_phase(deployment, phase, following, now)
    record(action="deployment.phase.approve", target=deployment, user=actor, ip=ip, detail={"phase": phase.name})
    return phase


@transaction.atomic
def rollback(*, deployment: Deployment, actor: Any, now: datetime, ip: str | None = None) -> Deployment:
    """A new deployment of the previous version to every gateway that got this one's assignment.

    This one is canceled first (gateways that never got it keep what they run); gateways without a
    known previous version are listed as excluded."""
    deployment = _locked(deployment)
    if deployment.is_active:
        deployment.status, deployment.finished = Deployment.Status.CANCELED, now
        deployment.status_reason = f"Rolled back by {actor}"
        deployment.save(update_fields=["status", "status_reason", "finished"])
        _cancel_actions(deployment, deployment.status_reason, now)
    holding = set(
        Assignment.objects.filter(artifact_type=deployment.artifact_type, deployment=str(deployment.pk)).values_list(
            "gateway_id", flat=True
        )
    )
    actions = list(
        GatewayAction.objects.filter(deployment=deployment, gateway_id__in=holding).select_related("previous_artifact")
    )
    if not actions:
        raise OperationNotAllowedError("No gateway holds this deployment's assignment; nothing to roll back.")
    eligible = [(a.gateway_id, a.previous_artifact_id) for a in actions if a.previous_artifact_id is not None]
    exclusions: list[tuple[int, str, str]] = [
        (
            a.gateway_id,
            Exclusion.Reason.NO_PREVIOUS_VERSION,
            "nothing was assigned before and the reported version has no matching artifact",
        )
        for a in actions
        if a.previous_artifact_id is None
    ]
    plan = _plan_of(deployment)
    specs = (PhaseSpec("rollback", percent=100),)
    rolled = Deployment.objects.create(
        organization=deployment.organization,
        name=f"Roll back {deployment.name}"[:100],
        artifact_type=deployment.artifact_type,
        target_kind=Deployment.TargetKind.LIST,
        include_new_gateways=False,
        rollback_of=deployment,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        created=now,
        **plan.deployment_fields(),
    )
    rolled.artifacts.set({a.previous_artifact for a in actions if a.previous_artifact is not None})
    rolled.target_gateways.set([a.gateway_id for a in actions])
    ev = Evaluation(eligible, exclusions, [len(eligible)], {})
    return _start(rolled, specs, ev, actor=actor, now=now, ip=ip, action="deployment.rollback")


def operate(
    *, deployment: Deployment, operation: str, reason: str = "", actor: Any, now: datetime, ip: str | None = None
) -> Any:
    """The operator actions by name, for the API and UI endpoints."""
    if operation == "pause":
        return pause(deployment=deployment, reason=reason, actor=actor, now=now, ip=ip)
    if operation == "resume":
        return resume(deployment=deployment, actor=actor, now=now, ip=ip)
    if operation == "cancel":
        return cancel(deployment=deployment, reason=reason, actor=actor, now=now, ip=ip)
    if operation == "retry-failed":
        return retry_failed(deployment=deployment, actor=actor, now=now, ip=ip)
    if operation == "approve":
        return approve_phase(deployment=deployment, actor=actor, now=now, ip=ip)
    if operation == "rollback":
        return rollback(deployment=deployment, actor=actor, now=now, ip=ip)
    raise DeploymentError(f"Unknown operation {operation!r}.", field="operation")


OPERATIONS = ("pause", "resume", "cancel", "retry-failed", "approve", "rollback")
