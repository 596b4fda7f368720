"""Signals other apps connect to; receivers run inside the batch transaction, before the ack."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with gateway=<Gateway>, reports=<list[fleet.monitoring.models.StatusReport]> for every
# batch holding `status` records. firmware/ advances its deployments from it.
status_reported = Signal()

# Sent with gateway=<Gateway>, command=<fleet.uplink.models.Command> when a command result arrives.
command_result_received = Signal()

# Sent with gateway=<Gateway>, events=<list[fleet.monitoring.models.GatewayEvent]> for every batch
# holding `event` records. fleet/csip keeps each gateway's utility-link state from `csip.link`.
events_received = Signal()
