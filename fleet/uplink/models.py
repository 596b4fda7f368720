"""Uplink bookkeeping: how far each gateway queue stream is committed, and commands to gateways."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from fleet.inventory.models import Gateway, Organization

from .protocol import CommandName


class UplinkStream(models.Model):
    """One agent queue instance; every record with seq <= last_seq is committed (or refused for good).

    One row write per batch (not per record) makes resends idempotent: see docs/protocol/uplink.md.
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="uplink_streams")
    stream = models.CharField(max_length=64)
    last_seq = models.BigIntegerField(default=0)
    agent_version = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "stream"], name="uplink_one_row_per_stream")]

    def __str__(self) -> str:
        return f"{self.gateway_id}/{self.stream}@{self.last_seq}"


class Command(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        ACCEPTED = "accepted", "Accepted"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="commands")
    name = models.CharField(max_length=32, choices=[(c.value, c.value) for c in CommandName])
    args = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    result_message = models.CharField(max_length=2000, blank=True)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["gateway", "state"], name="uplink_command_gw_state")]

    def __str__(self) -> str:
        return f"{self.name} to {self.gateway_id}"

    @property
    def organization(self) -> Organization:
        return self.gateway.organization
