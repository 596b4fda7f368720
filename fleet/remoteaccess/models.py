"""Remote maintenance sessions: who reached which port behind which gateway, when, why, how much.

A session is asked for by a technician, maybe approved by an admin, then relayed between the
technician's WebSocket and the gateway's (consumers.py) until it is closed, expires, idles out or
is revoked. Each tool connection multiplexed over it is a `SessionConnection` with its own
times and byte counts; a terminal session also keeps an asciicast v2 recording.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models

from fleet.inventory.models import Gateway, Organization


class RemoteAccessPolicy(models.Model):
    """An organization's rules for maintenance sessions (defaults when it has none)."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="remote_access_policy")
    require_approval = models.BooleanField(
        default=False, help_text="Sessions wait for an admin (not the requester) to approve them."
    )
    max_duration = models.DurationField(default=timedelta(hours=1), help_text="Longest session allowed.")
    idle_timeout = models.DurationField(default=timedelta(minutes=15), help_text="Silence after which it closes.")

    class Meta:
        verbose_name_plural = "remote access policies"

    def __str__(self) -> str:
        return f"remote access policy of {self.organization}"


class MaintenanceSession(models.Model):
    class Kind(models.TextChoices):
        TCP = "tcp", "TCP port"
        SERIAL = "serial", "Serial port"
        TERMINAL = "terminal", "Gateway terminal"

    class State(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        OPENING = "opening", "Opening"  # approved; the gateway was asked to dial in
        ACTIVE = "active", "Active"  # the gateway's end is connected
        CLOSED = "closed", "Closed"
        EXPIRED = "expired", "Expired"
        REFUSED = "refused", "Refused"  # by the gateway, or approval denied
        REVOKED = "revoked", "Revoked"  # certificate or access withdrawn

    ENDED_STATES = (State.CLOSED, State.EXPIRED, State.REFUSED, State.REVOKED)
    LIVE_STATES = (State.AWAITING_APPROVAL, State.OPENING, State.ACTIVE)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="maintenance_sessions")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.JSONField(help_text="As sent to the gateway: device/host and port, serial port and framing.")
    target_label = models.CharField(max_length=200)
    reason = models.CharField(max_length=500)
    state = models.CharField(max_length=20, choices=State.choices)
    duration = models.DurationField()
    idle_timeout = models.DurationField()
    created = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Set when the session is approved.")
    connected_at = models.DateTimeField(null=True, blank=True, help_text="When the gateway's end connected.")
    technician_joined_at = models.DateTimeField(
        null=True, blank=True, help_text="When the technician's end connected; a session serves one."
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=500, blank=True)
    bytes_up = models.BigIntegerField(default=0, help_text="Technician to device.")
    bytes_down = models.BigIntegerField(default=0, help_text="Device to technician.")
    connections = models.PositiveIntegerField(default=0)
    recording = models.CharField(max_length=200, blank=True, help_text="asciicast v2 file under var/recordings/.")

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["state", "expires_at"], name="remoteaccess_state_expiry")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target_label} on {self.gateway}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE_STATES


class SessionConnection(models.Model):
    """One connection of the technician's tool (one multiplexed stream) in a session."""

    session = models.ForeignKey(MaintenanceSession, on_delete=models.CASCADE, related_name="connection_log")
    stream = models.PositiveIntegerField()
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    bytes_up = models.BigIntegerField(default=0)
    bytes_down = models.BigIntegerField(default=0)
    close_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["session", "stream"]
        constraints = [models.UniqueConstraint(fields=["session", "stream"], name="remoteaccess_one_row_per_stream")]

    def __str__(self) -> str:
        return f"{self.session_id} stream {self.stream}"
