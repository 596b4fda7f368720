"""What gateways stream in (logs, telemetry, events, deployment status) and the alarms built from it.

LogEntry and TelemetrySample are the high-volume tables: on PostgreSQL they are range-partitioned
by day on `ts` (see fleet.monitoring.partitions and migration 0002), elsewhere plain tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from fleet.core import protocol_schemas
from fleet.core.protocol_schemas import check_vocabulary
from fleet.inventory.models import Gateway, Organization, Site

from .lifecycle import AlarmState, AlarmStatus, Severity

# The labels of an alarm (Alarm.labels): what routes group by and silences match on.
ALARM_LABELS = ("organization", "site", "gateway", "source", "code", "device", "severity")


class MonitoringSettings(models.Model):
    """Per-organization knobs; organizations without a row use the defaults below."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="monitoring_settings")
    log_retention_days = models.PositiveIntegerField(default=30)
    telemetry_retention_days = models.PositiveIntegerField(default=90)
    offline_after_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Silence before 'gateway offline'; empty = GATEWAY_OFFLINE_AFTER."
    )
    max_shelve_hours = models.PositiveIntegerField(default=24)

    class Meta:
        verbose_name_plural = "monitoring settings"

    def __str__(self) -> str:
        return f"Monitoring settings of {self.organization}"

    @property
    def offline_after(self) -> timedelta:
        if self.offline_after_seconds:
            return timedelta(seconds=self.offline_after_seconds)
        return settings.GATEWAY_OFFLINE_AFTER


class LogLevel(models.TextChoices):
    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
    CRITICAL = "critical", "Critical"


check_vocabulary("log levels", LogLevel, protocol_schemas.LOG_LEVELS)
LOG_LEVEL_RANK = {level.value: rank for rank, level in enumerate(LogLevel)}


class LogEntry(models.Model):
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    received_at = models.DateTimeField()
    level = models.CharField(max_length=8, choices=LogLevel.choices)
    logger = models.CharField(max_length=200, blank=True)
    message = models.TextField()
    fields = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-ts", "-id"]
        indexes = [models.Index(fields=["gateway", "ts"], name="monitoring_log_gw_ts")]
        verbose_name_plural = "log entries"

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.level} {self.message[:60]}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization


class TelemetrySample(models.Model):
    """One value of one point of one device at one time (values are already scaled)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="+")
    device = models.CharField(max_length=200)
    point = models.CharField(max_length=64)
    ts = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        ordering = ["ts"]
        indexes = [models.Index(fields=["gateway", "device", "point", "ts"], name="monitoring_tel_series")]

    def __str__(self) -> str:
        return f"{self.device}.{self.point}={self.value} at {self.ts}"


class TelemetryLatest(models.Model):
    """The last value of each point, upserted with every batch so 'latest values' is one small read."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="telemetry_latest")
    device = models.CharField(max_length=200)
    point = models.CharField(max_length=64)
    ts = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        ordering = ["device", "point"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "device", "point"], name="monitoring_latest_one_per_point")
        ]

    def __str__(self) -> str:
        return f"{self.device}.{self.point}={self.value}"


class GatewayEvent(models.Model):
    """`event` records: agent lifecycle, command results and other notable facts."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    ts = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField()
    name = models.CharField(max_length=100)
    message = models.CharField(max_length=2000, blank=True)
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-ts", "-id"]

    def __str__(self) -> str:
        return self.name


class StatusReport(models.Model):
    """`status` records: one deployment step reported by a gateway (handed on to firmware/)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="status_reports")
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    received_at = models.DateTimeField()
    deployment = models.CharField(max_length=64, db_index=True)
    step = models.CharField(max_length=16)
    payload = models.JSONField()

    class Meta:
        ordering = ["-ts", "-id"]

    def __str__(self) -> str:
        return f"{self.gateway_id} deployment {self.deployment}: {self.step}"


class Alarm(models.Model):
    """One alarm instance: opened by a raise, closed when cleared and acknowledged."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alarms")
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="alarms")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms")
    source = models.CharField(max_length=200)
    code = models.CharField(max_length=200)
    device = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    message = models.CharField(max_length=2000, blank=True)
    details = models.JSONField(null=True, blank=True)
    state = models.CharField(max_length=24, choices=AlarmState.choices, default=AlarmState.ACTIVE_UNACKNOWLEDGED)
    occurrences = models.PositiveIntegerField(default=1)
    raised_at = models.DateTimeField()
    last_raised_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    shelved_until = models.DateTimeField(null=True, blank=True)
    shelved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suppressed = models.BooleanField(default=False)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    out_of_service = models.BooleanField(default=False)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "source", "code"],
                condition=~models.Q(state=AlarmState.CLOSED),
                name="monitoring_one_open_alarm_per_condition",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "state"], name="monitoring_alarm_org_state"),
            models.Index(fields=["gateway", "state"], name="monitoring_alarm_gw_state"),
        ]

    def __str__(self) -> str:
        return f"{self.code} on {self.gateway_id}"

    @property
    def status(self) -> AlarmStatus:
        return AlarmStatus(
            state=AlarmState(self.state),
            shelved_until=self.shelved_until,
            suppressed=self.suppressed,
            out_of_service=self.out_of_service,
        )

    def is_shelved(self, now: datetime) -> bool:
        return self.status.is_shelved(now)

    @property
    def labels(self) -> dict[str, str]:
        """What notification routes group by and silences match on."""
        return {
            "organization": self.organization.slug,
            "site": self.site.name if self.site else "",
            "gateway": self.gateway.serial,
            "source": self.source,
            "code": self.code,
            "device": self.device,
            "severity": self.severity,
        }


class AlarmTransition(models.Model):
    """The alarm's timeline: every raise, clear, acknowledgement, overlay change and comment."""

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="transitions")
    at = models.DateTimeField()
    action = models.CharField(max_length=24)
    from_state = models.CharField(max_length=24, blank=True)
    to_state = models.CharField(max_length=24, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="username, gateway:<serial> or system")
    comment = models.TextField(blank=True)
    detail = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_label}"


class NotificationRoute(models.Model):
    """Where new alarms of chosen severities are sent, grouped Alertmanager-style."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Signed webhook"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="notification_routes")
    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=2000, help_text="Comma-separated e-mail addresses, or the webhook URL.")
    secret = models.CharField(max_length=200, blank=True, help_text="HMAC-SHA256 key for webhook signatures.")
    severities = models.JSONField(default=list, help_text="Severities that notify; empty = all.")
    group_by = models.JSONField(default=list, help_text="Alarm labels that form a group; empty = one group.")
    group_wait_seconds = models.PositiveIntegerField(default=30)
    group_interval_seconds = models.PositiveIntegerField(default=300)
    repeat_interval_seconds = models.PositiveIntegerField(default=4 * 3600)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="monitoring_route_name_per_org")]

    def __str__(self) -> str:
        return self.name


class Silence(models.Model):
    """Mutes notifications for alarms matching labels during a time box; the console still shows them."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="silences")
    matchers = models.JSONField(help_text='Labels that must all be equal, e.g. {"site": "Depot", "code": "x"}.')
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"Silence {self.matchers} until {self.ends_at}"

    def matches(self, labels: dict[str, str], now: datetime) -> bool:
        if not self.starts_at <= now < self.ends_at:
            return False
        return all(labels.get(name) == value for name, value in self.matchers.items())


class NotificationGroup(models.Model):
    """An aggregation group of one route: the alarms sharing its group_by labels, and when it last sent."""

    route = models.ForeignKey(NotificationRoute, on_delete=models.CASCADE, related_name="groups")
    key = models.CharField(max_length=64)
    labels = models.JSONField()
    alarms = models.ManyToManyField(Alarm, related_name="notification_groups")
    created = models.DateTimeField()
    next_flush_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_sent_fingerprint = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["route", "key"], name="monitoring_group_key_per_route")]

    def __str__(self) -> str:
        return f"{self.route}: {self.labels}"


class NotificationDelivery(models.Model):
    group = models.ForeignKey(NotificationGroup, on_delete=models.CASCADE, related_name="deliveries")
    at = models.DateTimeField()
    firing = models.PositiveIntegerField()
    resolved = models.PositiveIntegerField()
    ok = models.BooleanField()
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"Delivery at {self.at} ({'ok' if self.ok else 'failed'})"
