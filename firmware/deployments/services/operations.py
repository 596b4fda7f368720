"""State changes of deployments: operations."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.db import transaction

from firmware.deployments.errors import DeploymentError, OperationNotAllowedError
from firmware.deployments.models import ActionEvent, Deployment, Exclusion, GatewayAction, RolloutPhase
from firmware.deployments.plans import PhaseSpec
from firmware.deployments.states import ACTIVE, FAILURES, IN_FLIGHT, INSTALLING, TERMINAL
from firmware.models import Assignment
from fleet.accounts.authorization import Actor, authorize, person
from fleet.accounts.roles import Capability
from fleet.audit.services import record

from ._common import BATCH, S
from .assignment import _restore_previous
from .planning import Evaluation, _event, _start
from .rollout import _complete_phase, _current_phase, _pause, _plan_of


def _locked(deployment: Deployment) -> Deployment:
    return Deployment.objects.select_for_update().get(pk=deployment.pk)


@transaction.atomic
def pause(
    *, deployment: Deployment, reason: str = "", actor: Actor, now: datetime, ip: str | None = None
) -> Deployment:
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, deployment.organization_id)
    deployment = _locked(deployment)
    if deployment.status != Deployment.Status.RUNNING:
        raise OperationNotAllowedError(f"Only a running deployment can be paused; this one is {deployment.status}.")
    _pause(deployment, reason.strip() or f"Paused by {actor}", actor=actor, ip=ip)
    return deployment


@transaction.atomic
def resume(*, deployment: Deployment, actor: Actor, now: datetime, ip: str | None = None) -> Deployment:
    """Continue; failures so far count as accepted, so the threshold applies to what comes next."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, deployment.organization_id)
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
def cancel(
    *, deployment: Deployment, reason: str = "", actor: Actor, now: datetime, ip: str | None = None
) -> Deployment:
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, deployment.organization_id)
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
def retry_failed(*, deployment: Deployment, actor: Actor, now: datetime, ip: str | None = None) -> int:
    """Schedule failed, rolled-back and timed-out gateways again (a completed deployment reopens)."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, deployment.organization_id)
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
def approve_phase(*, deployment: Deployment, actor: Actor, now: datetime, ip: str | None = None) -> RolloutPhase:
    """Operator approval of a phase that passed its thresholds and soak: the next phase starts."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, deployment.organization_id)
    deployment = _locked(deployment)
    phase = _current_phase(deployment)
    if phase is None or phase.status != RolloutPhase.Status.AWAITING_APPROVAL:
        raise OperationNotAllowedError("No phase is waiting for approval.")
    if deployment.status != Deployment.Status.RUNNING:
        raise OperationNotAllowedError(f"Resume the deployment first; it is {deployment.status}.")
    phase.approved_by = person(actor)
    following = deployment.phases.filter(index=phase.index + 1).first()
    _complete_phase(deployment, phase, following, now)
    record(action="deployment.phase.approve", target=deployment, user=actor, ip=ip, detail={"phase": phase.name})
    return phase


@transaction.atomic
def rollback(*, deployment: Deployment, actor: Actor, now: datetime, ip: str | None = None) -> Deployment:
    """A new deployment of the previous version to every gateway that got this one's assignment.

    This one is canceled first (gateways that never got it keep what they run); gateways without a
    known previous version are listed as excluded."""
    authorize(actor, Capability.MANAGE_DEPLOYMENTS, deployment.organization_id)
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
        created_by=person(actor),
        created=now,
        **plan.deployment_fields(),
    )
    rolled.artifacts.set({a.previous_artifact for a in actions if a.previous_artifact is not None})
    rolled.target_gateways.set([a.gateway_id for a in actions])
    ev = Evaluation(eligible, exclusions, [len(eligible)], {})
    return _start(rolled, specs, ev, actor=actor, now=now, ip=ip, action="deployment.rollback")


def operate(
    *, deployment: Deployment, operation: str, reason: str = "", actor: Actor, now: datetime, ip: str | None = None
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
