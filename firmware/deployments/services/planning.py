"""State changes of deployments: planning."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet, Value

from firmware.deployments.errors import InvalidPlanError
from firmware.deployments.models import ActionEvent, Deployment, Exclusion, GatewayAction, RolloutPhase
from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
from firmware.deployments.schedule import phase_boundaries
from firmware.deployments.states import ACTIVE
from firmware.models import Artifact
from fleet.accounts.authorization import Actor, authorize, person
from fleet.accounts.roles import Capability
from fleet.audit.services import record
from fleet.inventory.models import Gateway, Organization

from ._common import BATCH, S


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
    *, organization: Organization, artifacts: Sequence[Artifact], target: TargetSpec, plan: RolloutPlan, actor: Actor
) -> dict[str, Any]:
    """Gateways per phase (count and the first serials) and the excluded ones, for the create form."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, organization)
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
    actor: Actor,
    now: datetime,
    ip: str | None = None,
) -> Deployment:
    """Plan and start a deployment: actions for every compatible gateway, exclusions for the rest,
    older deployments of the same type superseded for these gateways, and the first phase started."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, organization)
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
        created_by=person(actor),
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
