"""What an operator asks for: the target and the rollout plan, as validated value objects.

The API serializer and the web form both build these; services refuse an inconsistent plan with
`InvalidPlanError` so the rules live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from fleet.inventory.group_filters import apply_group_filter, validate_group_filter
from fleet.inventory.models import Gateway, GatewayGroup, Organization
from fleet.inventory.selectors import group_members

from .errors import InvalidPlanError
from .models import Deployment
from .schedule import PhaseSize


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    percent: int | None = None
    count: int | None = None
    min_soak: timedelta = timedelta(0)
    auto_advance: bool = True

    @property
    def size(self) -> PhaseSize:
        return PhaseSize(percent=self.percent, count=self.count)


MAX_PERCENT = 100

DEFAULT_PHASES = (
    PhaseSpec("canary", percent=1, min_soak=timedelta(hours=1)),
    PhaseSpec("early", percent=10, min_soak=timedelta(hours=4)),
    PhaseSpec("half", percent=50, min_soak=timedelta(hours=4)),
    PhaseSpec("all", percent=100),
)


@dataclass(frozen=True)
class RolloutPlan:
    phases: tuple[PhaseSpec, ...] = DEFAULT_PHASES
    rate_limit_per_minute: int | None = None
    jitter_seconds: int = 0
    window_start: time | None = None
    window_end: time | None = None
    sun_down_only: bool = False
    gateway_timeout: timedelta = timedelta(hours=2)
    max_retries: int = 2
    retry_backoff: timedelta = timedelta(minutes=10)
    success_threshold_pct: int = 95
    failure_threshold_pct: int | None = 10
    failure_threshold_count: int | None = None
    failure_min_sample: int = 5

    def validate(self) -> None:
        self._validate_phases()
        if (self.window_start is None) != (self.window_end is None):
            raise InvalidPlanError("Give both the start and the end of the maintenance window.", field="window_end")
        if self.window_start is not None and self.window_start == self.window_end:
            raise InvalidPlanError("The maintenance window is empty (start equals end).", field="window_end")
        self._validate_thresholds()
        if self.gateway_timeout < timedelta(minutes=1):
            raise InvalidPlanError("The per-gateway timeout must be at least one minute.", field="gateway_timeout")

    def _validate_phases(self) -> None:
        if not self.phases:
            raise InvalidPlanError("A plan needs at least one phase.", field="phases")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise InvalidPlanError("Phase names must be unique.", field="phases")
        previous_pct = previous_count = 0
        for phase in self.phases:
            if (phase.percent is None) == (phase.count is None):
                raise InvalidPlanError(f"Phase '{phase.name}': give a percent or a count, not both.", field="phases")
            if phase.percent is not None:
                if not 1 <= phase.percent <= MAX_PERCENT or phase.percent <= previous_pct:
                    raise InvalidPlanError(
                        f"Phase '{phase.name}': percentages are cumulative, 1..100 and increasing.", field="phases"
                    )
                previous_pct = phase.percent
            if phase.count is not None:
                if phase.count < 1 or phase.count <= previous_count:
                    raise InvalidPlanError(
                        f"Phase '{phase.name}': counts are cumulative, at least 1 and increasing.", field="phases"
                    )
                previous_count = phase.count
            if phase.min_soak < timedelta(0):
                raise InvalidPlanError(f"Phase '{phase.name}': the soak time cannot be negative.", field="phases")

    def _validate_thresholds(self) -> None:
        if not 0 <= self.success_threshold_pct <= MAX_PERCENT:
            raise InvalidPlanError("The success threshold is a percentage (0..100).", field="success_threshold_pct")
        if self.failure_threshold_pct is not None and not 0 <= self.failure_threshold_pct <= MAX_PERCENT:
            raise InvalidPlanError("The failure threshold is a percentage (0..100).", field="failure_threshold_pct")
        if self.failure_threshold_pct is None and self.failure_threshold_count is None:
            raise InvalidPlanError(
                "Set a failure threshold (percent or count): a rollout must be able to stop itself.",
                field="failure_threshold_pct",
            )
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            raise InvalidPlanError(
                "The rate limit must be at least 1 gateway per minute.", field="rate_limit_per_minute"
            )

    def deployment_fields(self) -> dict[str, Any]:
        return {
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "jitter_seconds": self.jitter_seconds,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "sun_down_only": self.sun_down_only,
            "gateway_timeout": self.gateway_timeout,
            "max_retries": self.max_retries,
            "retry_backoff": self.retry_backoff,
            "success_threshold_pct": self.success_threshold_pct,
            "failure_threshold_pct": self.failure_threshold_pct,
            "failure_threshold_count": self.failure_threshold_count,
            "failure_min_sample": self.failure_min_sample,
        }


@dataclass(frozen=True)
class TargetSpec:
    """A gateway group (static or dynamic), a filter, or a list of gateways."""

    kind: str
    group: GatewayGroup | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    gateways: tuple[Gateway, ...] = ()

    def validate(self, organization: Organization) -> None:
        if self.kind == Deployment.TargetKind.GROUP:
            if self.group is None:
                raise InvalidPlanError("Choose the gateway group to deploy to.", field="target_group")
            if self.group.organization_id != organization.pk:
                raise InvalidPlanError("The group belongs to another organization.", field="target_group")
        elif self.kind == Deployment.TargetKind.FILTER:
            try:
                validate_group_filter(self.filter)
            except ValidationError as e:
                raise InvalidPlanError("; ".join(e.messages), field="target_filter") from e
        elif self.kind == Deployment.TargetKind.LIST:
            if not self.gateways:
                raise InvalidPlanError("List at least one gateway.", field="target_gateways")
            foreign = [g.serial for g in self.gateways if g.organization_id != organization.pk]
            if foreign:
                raise InvalidPlanError(
                    f"Gateways of another organization: {', '.join(foreign[:5])}.", field="target_gateways"
                )
        else:
            raise InvalidPlanError(
                f"Unknown target kind {self.kind!r}; one of {', '.join(Deployment.TargetKind.values)}.",
                field="target_kind",
            )

    def members(self, organization: Organization) -> QuerySet[Gateway]:
        if self.kind == Deployment.TargetKind.GROUP:
            assert self.group is not None
            return group_members(self.group)
        if self.kind == Deployment.TargetKind.FILTER:
            return apply_group_filter(Gateway.objects.filter(organization=organization), self.filter)
        return Gateway.objects.filter(organization=organization, pk__in=[g.pk for g in self.gateways])

    @classmethod
    def of(cls, deployment: Deployment) -> TargetSpec:
        return cls(
            kind=deployment.target_kind,
            group=deployment.target_group,
            filter=deployment.target_filter,
            gateways=tuple(deployment.target_gateways.all()) if deployment.target_kind == "list" else (),
        )
