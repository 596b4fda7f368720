"""State changes of deployments: the rollout."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import transaction

from firmware import services as firmware
from firmware.deployments.models import ActionEvent, Deployment, GatewayAction, RolloutPhase
from firmware.deployments.plans import PhaseSpec, RolloutPlan, TargetSpec
from firmware.deployments.states import ACTIVE, FAILURES, IN_FLIGHT, TERMINAL
from firmware.errors import ArtifactNotReleasedError, FirmwareError
from fleet.accounts.authorization import SYSTEM
from fleet.audit.services import record
from fleet.uplink import services as uplink

from ._common import RATE_PERIOD, S
from .assignment import _fail, _mark_assigned, _previous_before_assigning, conditions_for
from .planning import Evaluation, _event, _start_phase, _supersede, _write_actions, evaluate


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
        due_gateways: list[int] = []
        transaction.on_commit(lambda: _publish_and_nudge(deployment, due_gateways, now))
        for install, actions in groups.values():
            try:
                with transaction.atomic():
                    previous = _previous_before_assigning(actions)
                    firmware.assign_many(
                        gateways=[a.gateway for a in actions],
                        artifact=actions[0].artifact,
                        deployment=str(deployment.pk),
                        install=install,
                        actor=SYSTEM,
                    )
                    _mark_assigned(actions, previous, now)
                due_gateways.extend(a.gateway_id for a in actions)
            except ArtifactNotReleasedError as e:
                _pause(deployment, f"Paused: {e}")
                break
            except FirmwareError:
                for action in actions:
                    if _assign_one(action, install, now):
                        assigned += 1
                        due_gateways.append(action.gateway_id)
                continue
            assigned += len(actions)
    return assigned


def _publish_and_nudge(deployment: Deployment, gateway_ids: list[int], now: datetime) -> None:
    """Once the assignments are committed: publish them (the publisher task queued by the assignment
    may still be waiting for a worker), then ask the connected gateways to check now instead of at
    their next poll. Publishing first means the check finds the new targets."""
    if not gateway_ids:
        return
    firmware.publish()
    uplink.request_update_check(gateway_ids=gateway_ids, reason=f"deployment {deployment.pk}", now=now)


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
                actor=SYSTEM,
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
