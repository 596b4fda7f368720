"""Deployments: what to roll out, to whom, in which phases, and where each gateway stands.

A deployment carries artifacts of one type (several when different hardware models need
different builds). Each targeted gateway gets one `GatewayAction` that walks the state machine
in `states.py`; gateways that cannot take the deployment are listed as `Exclusion`s.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models

from fleet.inventory.models import Gateway, GatewayGroup, Organization

from ..models import Artifact, ArtifactType


class Deployment(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELED = "canceled", "Canceled"
        SUPERSEDED = "superseded", "Superseded"

    class TargetKind(models.TextChoices):
        GROUP = "group", "Gateway group"
        FILTER = "filter", "Filter"
        LIST = "list", "List of gateways"

    ACTIVE_STATUSES = (Status.RUNNING, Status.PAUSED)

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="deployments")
    name = models.CharField(max_length=100)
    artifact_type = models.CharField(max_length=16, choices=ArtifactType.choices)
    artifacts = models.ManyToManyField(Artifact, related_name="deployments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    status_reason = models.TextField(blank=True, help_text="Why it paused, was canceled or superseded.")

    target_kind = models.CharField(max_length=16, choices=TargetKind.choices)
    target_group = models.ForeignKey(GatewayGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_filter = models.JSONField(default=dict, blank=True, help_text="fleet.inventory.group_filters syntax.")
    target_gateways = models.ManyToManyField(Gateway, blank=True, related_name="+")
    include_new_gateways = models.BooleanField(
        default=True, help_text="Gateways that join the group or match the filter later are rolled out to as well."
    )

    # Rollout plan, gateway level.
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    jitter_seconds = models.PositiveIntegerField(default=0, help_text="Random delay before each gateway starts.")
    window_start = models.TimeField(null=True, blank=True, help_text="Install window start, site local time.")
    window_end = models.TimeField(null=True, blank=True)
    sun_down_only = models.BooleanField(default=False)
    gateway_timeout = models.DurationField(help_text="Longest a gateway may go without progress.")
    max_retries = models.PositiveSmallIntegerField(default=2)
    retry_backoff = models.DurationField(help_text="Delay before the first retry; doubles with each retry.")
    # Rollout plan, deployment level.
    success_threshold_pct = models.PositiveSmallIntegerField(default=95)
    failure_threshold_pct = models.PositiveSmallIntegerField(null=True, blank=True)
    failure_threshold_count = models.PositiveIntegerField(null=True, blank=True)
    failure_min_sample = models.PositiveIntegerField(default=1)
    # Failures the operator accepted by resuming; thresholds count what came after.
    failure_baseline = models.PositiveIntegerField(default=0)
    sample_baseline = models.PositiveIntegerField(default=0)

    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks")
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["organization", "artifact_type", "status"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def has_window(self) -> bool:
        return self.window_start is not None and self.window_end is not None


class RolloutPhase(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        COMPLETED = "completed", "Completed"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="phases")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=50)
    # Cumulative size: by the end of this phase, this share (or number) of the gateways has started.
    percent = models.PositiveSmallIntegerField(null=True, blank=True)
    count = models.PositiveIntegerField(null=True, blank=True)
    min_soak = models.DurationField()
    auto_advance = models.BooleanField(default=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    started = models.DateTimeField(null=True, blank=True)
    threshold_reached = models.DateTimeField(null=True, blank=True)
    completed = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["deployment", "index"]
        constraints = [models.UniqueConstraint(fields=["deployment", "index"], name="unique_phase_index")]

    def __str__(self) -> str:
        return f"{self.deployment} phase {self.index + 1} {self.name}"

    @property
    def organization(self) -> Organization:
        return self.deployment.organization

    @property
    def size_label(self) -> str:
        return f"{self.percent}%" if self.percent is not None else f"{self.count} gateways"


class ActionState(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    ASSIGNED = "assigned", "Assigned"
    DOWNLOADING = "downloading", "Downloading"
    DOWNLOADED = "downloaded", "Downloaded"
    INSTALLING = "installing", "Installing"
    REBOOTING = "rebooting", "Rebooting"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"


class GatewayAction(models.Model):
    """One gateway's part in one deployment."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="actions")
    phase = models.ForeignKey(RolloutPhase, on_delete=models.CASCADE, related_name="actions")
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="deployment_actions")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=ActionState.choices, default=ActionState.SCHEDULED)
    attempt = models.PositiveSmallIntegerField(default=1)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Earliest assignment (jitter, backoff).")
    # Drawn at planning; the phase start adds it to its own start time in one UPDATE.
    jitter = models.DurationField(default=timedelta(0))
    assigned_at = models.DateTimeField(null=True, blank=True, db_index=True)
    state_changed = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text="Timed out without progress by then.")
    cancel_requested = models.BooleanField(default=False, help_text="Canceled mid-install: let it finish.")
    # What the gateway had before, to restore on cancel: {"artifact": id, "deployment": str, "install": {...}}
    # or null (nothing assigned of this type).
    previous_assignment = models.JSONField(null=True, blank=True)
    previous_artifact = models.ForeignKey(Artifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.TextField(blank=True)
    log_excerpt = models.TextField(blank=True)
    progress = models.FloatField(null=True, blank=True)
    superseded_by = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["deployment", "phase__index", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "gateway"], name="one_action_per_gateway_and_deployment")
        ]
        indexes = [
            models.Index(fields=["deployment", "state"]),
            models.Index(fields=["gateway", "state"]),
            models.Index(fields=["state", "deadline"]),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} in {self.deployment}: {self.state}"

    @property
    def organization(self) -> Organization:
        return self.deployment.organization


class ActionEvent(models.Model):
    """Per-gateway history: every state change and every agent report, accepted or refused."""

    class Source(models.TextChoices):
        AGENT = "agent", "Agent report"
        SERVER = "server", "Server"
        OPERATOR = "operator", "Operator"

    action = models.ForeignKey(GatewayAction, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    # Set for reports that matched no action (unknown deployment, gateway not in it).
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="deployment_events")
    at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    step = models.CharField(max_length=32, blank=True, help_text="The agent's step, for reports.")
    accepted = models.BooleanField(default=True)
    message = models.TextField(blank=True)
    report = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.gateway_id} {self.from_state}->{self.to_state} {self.message}"


class Exclusion(models.Model):
    """A targeted gateway that will not be assigned, and why (e.g. an incompatible hardware model)."""

    class Reason(models.TextChoices):
        INCOMPATIBLE = "incompatible", "No artifact for its hardware model"
        NO_LOCATION = "no_location", "Window or sun-down rule needs the site's time zone or position"
        NO_PREVIOUS_VERSION = "no_previous_version", "No earlier version known to roll back to"
        DECOMMISSIONED = "decommissioned", "Decommissioned"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="exclusions")
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["deployment", "gateway__serial"]
        constraints = [models.UniqueConstraint(fields=["deployment", "gateway"], name="one_exclusion_per_gateway")]

    def __str__(self) -> str:
        return f"{self.gateway} excluded from {self.deployment}: {self.reason}"
