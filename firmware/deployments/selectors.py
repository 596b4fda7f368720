"""Reads of deployments; tenancy is decided here, through fleet.accounts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Min, QuerySet

from fleet.accounts.roles import Capability
from fleet.accounts.selectors import organizations_visible_to, organizations_where
from fleet.inventory.models import Organization

from .models import ActionEvent, ActionState, Deployment, GatewayAction
from .states import FAILURES, TERMINAL


def deployments_visible_to(user: Any) -> QuerySet[Deployment]:
    return Deployment.objects.filter(organization__in=organizations_visible_to(user)).select_related("organization")


def organizations_for_deployments(user: Any) -> QuerySet[Organization]:
    return organizations_where(user, Capability.MANAGE_DEPLOYMENTS)


def actions_visible_to(user: Any) -> QuerySet[GatewayAction]:
    return GatewayAction.objects.filter(deployment__organization__in=organizations_visible_to(user)).select_related(
        "deployment", "gateway", "phase", "artifact"
    )


def action_history(action: GatewayAction) -> QuerySet[ActionEvent]:
    return ActionEvent.objects.filter(action=action)


@dataclass
class PhaseProgress:
    index: int
    name: str
    status: str
    size_label: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Progress:
    phases: list[PhaseProgress]
    counts: dict[str, int]
    failure_reasons: list[dict[str, Any]]
    excluded: int

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.counts.items() if state in TERMINAL)

    @property
    def percent_done(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 100

    @property
    def percent_success(self) -> int:
        return round(100 * self.counts.get(ActionState.SUCCESS, 0) / self.total) if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "finished": self.finished,
            "percent_done": self.percent_done,
            "counts": self.counts,
            "excluded": self.excluded,
            "phases": [
                {
                    "index": p.index,
                    "name": p.name,
                    "status": p.status,
                    "size": p.size_label,
                    "total": p.total,
                    "counts": p.counts,
                }
                for p in self.phases
            ],
            "failure_reasons": self.failure_reasons,
        }


def progress(deployment: Deployment) -> Progress:
    """Counts per state per phase (one aggregate query) and failures grouped by code."""
    empty = {state: 0 for state in ActionState.values}
    phases = {
        p.pk: PhaseProgress(p.index, p.name, p.status, p.size_label, dict(empty)) for p in deployment.phases.all()
    }
    totals: dict[str, int] = defaultdict(int, empty)
    rows = GatewayAction.objects.filter(deployment=deployment).order_by().values("phase_id", "state")
    for row in rows.annotate(n=Count("id")):
        phases[row["phase_id"]].counts[row["state"]] = row["n"]
        totals[row["state"]] += row["n"]
    reasons = (
        GatewayAction.objects.filter(deployment=deployment, state__in=FAILURES)
        .order_by()
        .values("state", "failure_code")
        .annotate(n=Count("id"), example=Min("failure_message"))
        .order_by("-n")
    )
    return Progress(
        phases=sorted(phases.values(), key=lambda p: p.index),
        counts=dict(totals),
        failure_reasons=[
            {"state": r["state"], "code": r["failure_code"] or "(none)", "count": r["n"], "example": r["example"]}
            for r in reasons
        ],
        excluded=deployment.exclusions.count(),
    )


def available_operations(deployment: Deployment, progress: Progress) -> list[str]:
    """The operations that apply in the deployment's current state (the UI shows only these)."""
    status = deployment.status
    failed = sum(progress.counts.get(state, 0) for state in FAILURES)
    awaiting = any(p.status == "awaiting_approval" for p in progress.phases)
    wanted = {
        "pause": status == Deployment.Status.RUNNING,
        "resume": status == Deployment.Status.PAUSED,
        "approve": status == Deployment.Status.RUNNING and awaiting,
        "retry-failed": failed > 0 and status in (*Deployment.ACTIVE_STATUSES, Deployment.Status.COMPLETED),
        "cancel": deployment.is_active,
        "rollback": True,
    }
    return [operation for operation, applies in wanted.items() if applies]
