"""State changes of deployments: assignment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from firmware import services as firmware
from firmware.deployments.models import ActionEvent, Deployment, GatewayAction
from firmware.deployments.schedule import InstallConditions
from firmware.errors import FirmwareError
from firmware.models import Artifact, ArtifactType, Assignment
from fleet.accounts.authorization import SYSTEM
from fleet.inventory.models import Gateway

from ._common import BATCH, PRE_INSTALL, S
from .planning import _event


def conditions_for(deployment: Deployment, gateway: Gateway) -> InstallConditions:
    site = gateway.site
    return InstallConditions(
        timezone=site.timezone if site else "UTC",
        window_start=deployment.window_start,
        window_end=deployment.window_end,
        sun_down=deployment.sun_down_only,
        latitude=float(site.latitude) if site and site.latitude is not None else None,
        longitude=float(site.longitude) if site and site.longitude is not None else None,
    )


def _install_deadline(action: GatewayAction, now: datetime) -> datetime:
    """No progress for the timeout means timed out; waiting for the install window does not count."""
    start = now
    if action.state in PRE_INSTALL:
        conditions = conditions_for(action.deployment, action.gateway)
        if not conditions.unconditional:
            start = max(now, conditions.next_opening(now) or now)
    return start + action.deployment.gateway_timeout


Previous = tuple[dict[str, Any] | None, Artifact | None]


def _previous_of(gateways: Sequence[Gateway], deployment: Deployment) -> dict[int, Previous]:
    """What each gateway had of this type before (to restore on cancel, to roll back to)."""
    current = {
        a.gateway_id: a
        for a in Assignment.objects.filter(
            gateway__in=gateways, artifact_type=deployment.artifact_type, artifact__isnull=False
        ).select_related("artifact")
    }
    # Nothing assigned before: the firmware version the gateway reports, if we have that build for it.
    reported = {g.firmware_version for g in gateways if g.pk not in current}
    builds = (
        list(
            Artifact.objects.filter(
                organization=deployment.organization_id, type=ArtifactType.FIRMWARE, version__in=reported
            )
        )
        if deployment.artifact_type == ArtifactType.FIRMWARE and reported
        else []
    )
    found: dict[int, Previous] = {}
    for gateway in gateways:
        if (a := current.get(gateway.pk)) is not None:
            found[gateway.pk] = (
                {"artifact": a.artifact_id, "deployment": a.deployment, "install": a.install},
                a.artifact,
            )
        else:
            found[gateway.pk] = (
                None,
                next(
                    (
                        b
                        for b in builds
                        if b.version == gateway.firmware_version and b.is_compatible_with(gateway.hardware_model)
                    ),
                    None,
                ),
            )
    return found


def _previous_before_assigning(actions: Sequence[GatewayAction]) -> dict[int, Previous]:
    first_time = [a.gateway for a in actions if a.assigned_at is None]  # retries keep the first answer
    return _previous_of(first_time, actions[0].deployment) if first_time else {}


def _mark_assigned(actions: Sequence[GatewayAction], previous: dict[int, Previous], now: datetime) -> None:
    """Record the new state of actions whose assignment was just written, in bulk."""
    events = []
    for action in actions:
        if action.gateway_id in previous:
            action.previous_assignment, action.previous_artifact = previous[action.gateway_id]
        events.append(
            _event(
                action,
                at=now,
                source=ActionEvent.Source.SERVER,
                to_state=S.ASSIGNED,
                message=f"assigned {action.artifact} (attempt {action.attempt})",
            )
        )
        action.state, action.assigned_at, action.state_changed = S.ASSIGNED, now, now
        # Same site time zone and position within a group, so the same deadline.
        action.deadline = _install_deadline(action, now) if action is actions[0] else actions[0].deadline
    GatewayAction.objects.bulk_update(
        actions,
        ["state", "assigned_at", "state_changed", "deadline", "previous_assignment", "previous_artifact"],
        batch_size=BATCH,
    )
    ActionEvent.objects.bulk_create(events, batch_size=BATCH)


def _restore_previous(action: GatewayAction) -> str:
    """Give the gateway back what it had, unless a newer deployment already changed its assignment."""
    deployment, gateway = action.deployment, action.gateway
    current = Assignment.objects.filter(gateway=gateway, artifact_type=deployment.artifact_type).first()
    if current is None or current.deployment != str(deployment.pk):
        return "assignment already changed by a newer deployment"
    previous = action.previous_assignment
    if previous is None:
        firmware.unassign(gateway=gateway, artifact_type=deployment.artifact_type, actor=SYSTEM)
        return "assignment removed (nothing was assigned before); the gateway keeps what it runs"
    artifact = Artifact.objects.get(pk=previous["artifact"])
    try:
        firmware.assign(
            gateway=gateway,
            artifact_type=deployment.artifact_type,
            artifact=artifact,
            deployment=previous["deployment"],
            install=previous["install"],
            actor=SYSTEM,
        )
    except FirmwareError as e:
        # The previous version may no longer fit (hardware swapped, artifact withdrawn from the signed
        # role). Stopping the canceled rollout for this gateway must not depend on it: withdraw the
        # canceled assignment instead, so the gateway keeps what it runs.
        firmware.unassign(gateway=gateway, artifact_type=deployment.artifact_type, actor=SYSTEM)
        return f"previous assignment {artifact} could not be restored ({e.message}); assignment removed"
    return f"previous assignment {artifact} restored"


def _fail(action: GatewayAction, state: S, *, code: str, message: str, now: datetime, log: str = "") -> str:
    """A failure or a timeout: retry later while retries remain, else final. Returns the history text."""
    deployment = action.deployment
    action.failure_code, action.failure_message = code[:100], message
    if log:
        action.log_excerpt = log
    retry = (
        state in (S.FAILED, S.TIMED_OUT)
        and not action.cancel_requested
        and deployment.is_active
        and action.attempt <= deployment.max_retries
    )
    if retry:
        delay = deployment.retry_backoff * (2 ** (action.attempt - 1))
        action.state, action.not_before, action.deadline = S.SCHEDULED, now + delay, None
        action.attempt += 1
        text = f"{state.label.lower()}: {code}; retry {action.attempt - 1} of {deployment.max_retries} after {delay}"
    else:
        action.state, action.deadline = state, None
        text = f"{state.label.lower()}: {code} {message}".strip()
        if action.cancel_requested:
            text += "; " + _restore_previous(action)
    action.state_changed = now
    return text
