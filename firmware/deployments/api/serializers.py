from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rest_framework import serializers

from firmware.models import Artifact
from fleet.core.api import StrictFieldsMixin
from fleet.inventory.models import Gateway, GatewayGroup, Organization

from ..models import ActionEvent, Deployment, Exclusion, GatewayAction, RolloutPhase
from ..plans import PhaseSpec, RolloutPlan, TargetSpec


class PhaseSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    name = serializers.CharField(max_length=50)
    percent = serializers.IntegerField(min_value=1, max_value=100, required=False, allow_null=True, default=None)
    count = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    min_soak_minutes = serializers.IntegerField(min_value=0, default=0)
    auto_advance = serializers.BooleanField(default=True)

    def to_spec(self, data: dict[str, Any]) -> PhaseSpec:
        return PhaseSpec(
            name=data["name"],
            percent=data["percent"],
            count=data["count"],
            min_soak=timedelta(minutes=data["min_soak_minutes"]),
            auto_advance=data["auto_advance"],
        )


@dataclass(frozen=True)
class DeploymentRequest:
    organization: Organization
    name: str
    artifacts: list[Artifact]
    target: TargetSpec
    plan: RolloutPlan
    include_new_gateways: bool


# Request field -> (RolloutPlan field, converter); absent fields keep the plan's defaults.
PLAN_FIELDS: dict[str, tuple[str, Any]] = {
    "rate_limit_per_minute": ("rate_limit_per_minute", None),
    "jitter_seconds": ("jitter_seconds", None),
    "window_start": ("window_start", None),
    "window_end": ("window_end", None),
    "sun_down_only": ("sun_down_only", None),
    "gateway_timeout_minutes": ("gateway_timeout", lambda v: timedelta(minutes=v)),
    "max_retries": ("max_retries", None),
    "retry_backoff_minutes": ("retry_backoff", lambda v: timedelta(minutes=v)),
    "success_threshold_pct": ("success_threshold_pct", None),
    "failure_threshold_pct": ("failure_threshold_pct", None),
    "failure_threshold_count": ("failure_threshold_count", None),
    "failure_min_sample": ("failure_min_sample", None),
}


class DeploymentRequestSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """A deployment to create (or preview). Phases are cumulative: by the end of a phase its
    percent (or count) of the eligible gateways has started; the last phase takes the rest."""

    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.none())
    name = serializers.CharField(max_length=100, required=False, default="")
    artifacts = serializers.PrimaryKeyRelatedField(queryset=Artifact.objects.none(), many=True)
    target_kind = serializers.ChoiceField(choices=Deployment.TargetKind.choices)
    target_group = serializers.PrimaryKeyRelatedField(
        queryset=GatewayGroup.objects.none(), required=False, allow_null=True, default=None
    )
    target_filter = serializers.JSONField(required=False, default=dict)
    target_gateways = serializers.SlugRelatedField(
        slug_field="serial", queryset=Gateway.objects.none(), many=True, required=False, help_text="Serials."
    )
    include_new_gateways = serializers.BooleanField(default=True)
    phases = PhaseSerializer(many=True, required=False)
    rate_limit_per_minute = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    jitter_seconds = serializers.IntegerField(min_value=0, max_value=86400, required=False)
    window_start = serializers.TimeField(required=False, allow_null=True, help_text="HH:MM, site local time")
    window_end = serializers.TimeField(required=False, allow_null=True)
    sun_down_only = serializers.BooleanField(required=False)
    gateway_timeout_minutes = serializers.IntegerField(min_value=1, required=False)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False)
    retry_backoff_minutes = serializers.IntegerField(min_value=0, required=False)
    success_threshold_pct = serializers.IntegerField(min_value=0, max_value=100, required=False)
    failure_threshold_pct = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True)
    failure_threshold_count = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    failure_min_sample = serializers.IntegerField(min_value=1, required=False)

    def __init__(
        self,
        *args: Any,
        organizations: Any = None,
        artifacts: Any = None,
        groups: Any = None,
        gateways: Any = None,
        **kwargs: Any,
    ) -> None:
        """The querysets are the requesting user's (tenancy); without them (schema generation) nothing matches."""
        super().__init__(*args, **kwargs)
        if organizations is not None:
            fields: dict[str, Any] = dict(self.fields)
            fields["organization"].queryset = organizations
            fields["artifacts"].child_relation.queryset = artifacts
            fields["target_group"].queryset = groups
            fields["target_gateways"].child_relation.queryset = gateways

    def to_request(self) -> DeploymentRequest:
        data = self.validated_data
        plan_kwargs = {
            plan_field: convert(data[name]) if convert and data[name] is not None else data[name]
            for name, (plan_field, convert) in PLAN_FIELDS.items()
            if name in data
        }
        if data.get("phases"):
            plan_kwargs["phases"] = tuple(PhaseSerializer().to_spec(p) for p in data["phases"])
        return DeploymentRequest(
            organization=data["organization"],
            name=data["name"],
            artifacts=list(data["artifacts"]),
            target=TargetSpec(
                kind=data["target_kind"],
                group=data["target_group"],
                filter=data["target_filter"] or {},
                gateways=tuple(data.get("target_gateways", ())),
            ),
            plan=RolloutPlan(**plan_kwargs),
            include_new_gateways=data["include_new_gateways"],
        )


class RolloutPhaseSerializer(serializers.ModelSerializer[RolloutPhase]):
    class Meta:
        model = RolloutPhase
        fields = [
            "index",
            "name",
            "percent",
            "count",
            "min_soak",
            "auto_advance",
            "status",
            "started",
            "threshold_reached",
            "completed",
            "approved_by",
        ]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer[Deployment]):
    phases = RolloutPhaseSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    target_gateways: serializers.SlugRelatedField[Gateway] = serializers.SlugRelatedField(
        slug_field="serial", many=True, read_only=True
    )

    class Meta:
        model = Deployment
        fields = [
            "id",
            "organization",
            "name",
            "artifact_type",
            "artifacts",
            "status",
            "status_reason",
            "target_kind",
            "target_group",
            "target_filter",
            "target_gateways",
            "include_new_gateways",
            "rate_limit_per_minute",
            "jitter_seconds",
            "window_start",
            "window_end",
            "sun_down_only",
            "gateway_timeout",
            "max_retries",
            "retry_backoff",
            "success_threshold_pct",
            "failure_threshold_pct",
            "failure_threshold_count",
            "failure_min_sample",
            "rollback_of",
            "superseded_by",
            "created_by",
            "created",
            "finished",
            "phases",
            "progress",
        ]
        read_only_fields = fields

    def get_progress(self, deployment: Deployment) -> dict[str, Any]:
        from ..selectors import progress

        return progress(deployment).as_dict()


class GatewayActionSerializer(serializers.ModelSerializer[GatewayAction]):
    gateway = serializers.CharField(source="gateway.serial", read_only=True)
    phase = serializers.CharField(source="phase.name", read_only=True)
    version = serializers.CharField(source="artifact.version", read_only=True)
    previous_version = serializers.CharField(source="previous_artifact.version", read_only=True, default=None)

    class Meta:
        model = GatewayAction
        fields = [
            "id",
            "deployment",
            "gateway",
            "phase",
            "version",
            "previous_version",
            "state",
            "attempt",
            "not_before",
            "assigned_at",
            "state_changed",
            "deadline",
            "cancel_requested",
            "failure_code",
            "failure_message",
            "log_excerpt",
            "progress",
            "superseded_by",
        ]
        read_only_fields = fields


class ActionEventSerializer(serializers.ModelSerializer[ActionEvent]):
    class Meta:
        model = ActionEvent
        fields = ["at", "source", "from_state", "to_state", "step", "accepted", "message", "report"]
        read_only_fields = fields


class ActionDetailSerializer(GatewayActionSerializer):
    history = ActionEventSerializer(source="events", many=True, read_only=True)

    class Meta(GatewayActionSerializer.Meta):
        fields = [*GatewayActionSerializer.Meta.fields, "history"]
        read_only_fields = fields


class ExclusionSerializer(serializers.ModelSerializer[Exclusion]):
    gateway = serializers.CharField(source="gateway.serial", read_only=True)

    class Meta:
        model = Exclusion
        fields = ["gateway", "reason", "detail"]
        read_only_fields = fields


class OperationSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
