"""Opening, approving, relaying and ending maintenance sessions. Each function is one transaction,
checks its actor and writes its audit entry; refusals are audited after the refused work rolled back.

Life of a session: `open_session` (technician) -> `awaiting_approval` when the organization wants
an admin to approve, else `opening` and the gateway is sent `open_tunnel` -> `active` once the
gateway's tunnel WebSocket is connected (`gateway_connected`) -> ended by `close_session`
(technician or admin), by the gateway refusing, by expiry or idleness, or by revocation of the
gateway's certificate or the technician's role. Ending notifies both WebSocket ends at once
through the channel layer, whichever ASGI worker holds them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from fleet.accounts.authorization import SYSTEM, authorize
from fleet.accounts.roles import Capability
from fleet.accounts.selectors import user_can
from fleet.audit.services import record as audit
from fleet.core.errors import DomainError
from fleet.inventory.models import Gateway
from fleet.uplink import services as uplink

from . import selectors
from .models import MaintenanceSession, SessionConnection
from .targets import parse_target

logger = logging.getLogger(__name__)

State = MaintenanceSession.State
T = TypeVar("T")


class SessionRefused(DomainError):
    """A session cannot be opened, approved, joined or closed in its current state."""

    status_code = 409


def session_group(session_id: Any, end: str) -> str:
    """Channel-layer group of one end ("gateway" or "technician") of a session."""
    return f"remoteaccess.{session_id}.{end}"


def tunnel_path(session_id: Any) -> str:
    return f"/ws/gateway/v1/tunnel/{session_id}/"


def _audited_refusal(
    action: str, *, gateway: Gateway, user: Any, ip: str | None, detail: Any, call: Callable[[], T]
) -> T:
    try:
        return call()
    except (DomainError, PermissionDenied) as exc:
        audit(
            action=action,
            target=gateway,
            user=user,
            ip=ip,
            detail={**detail, "refused": str(getattr(exc, "message", exc))},
        )
        raise


def _transfer(session: MaintenanceSession) -> dict[str, Any]:
    return {
        "session": str(session.pk),
        "target": session.target_label,
        "bytes_up": session.bytes_up,
        "bytes_down": session.bytes_down,
        "connections": session.connections,
    }


# --- opening ------------------------------------------------------------------------------------


def open_session(
    *,
    gateway: Gateway,
    user: Any,
    kind: str,
    target: str = "",
    serial: dict[str, Any] | None = None,
    reason: str,
    duration: timedelta | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> MaintenanceSession:
    """A technician asks to reach `target` behind `gateway` for `reason`, for at most `duration`."""
    detail = {"kind": kind, "target": target, "reason": reason}
    return _audited_refusal(
        "remoteaccess.session.refuse",
        gateway=gateway,
        user=user,
        ip=ip,
        detail=detail,
        call=lambda: _open(
            gateway=gateway,
            user=user,
            kind=kind,
            target=target,
            serial=serial,
            reason=reason,
            duration=duration,
            ip=ip,
            now=now or timezone.now(),
        ),
    )


def _open(
    *,
    gateway: Gateway,
    user: Any,
    kind: str,
    target: str,
    serial: dict[str, Any] | None,
    reason: str,
    duration: timedelta | None,
    ip: str | None,
    now: datetime,
) -> MaintenanceSession:
    authorize(user, Capability.OPEN_REMOTE_SESSION, gateway.organization)
    if gateway.status == Gateway.Status.DECOMMISSIONED:
        raise SessionRefused(f"{gateway} is decommissioned.", code="gateway_decommissioned")
    if not reason.strip():
        raise DomainError("Say why the session is needed; the reason is kept in the audit trail.", field="reason")
    policy = selectors.policy_for(gateway.organization)
    duration = duration or policy.max_duration
    if duration > policy.max_duration or duration < timedelta(minutes=1):
        raise DomainError(
            f"A session lasts from 1 minute to {policy.max_duration} in {gateway.organization}.", field="duration"
        )
    chosen = parse_target(kind, target, allowed=selectors.reported_remote_access(gateway), serial=serial)
    with transaction.atomic():
        session = MaintenanceSession.objects.create(
            gateway=gateway,
            requested_by=user,
            kind=chosen.kind,
            target=chosen.target,
            target_label=chosen.label,
            reason=reason.strip()[:500],
            state=State.AWAITING_APPROVAL if policy.require_approval else State.OPENING,
            duration=duration,
            idle_timeout=policy.idle_timeout,
            recording=f"{gateway.serial}-{now:%Y%m%dT%H%M%SZ}.cast" if chosen.kind == "terminal" else "",
        )
        audit(
            action="remoteaccess.session.open",
            target=session,
            user=user,
            ip=ip,
            detail={
                "gateway": gateway.serial,
                "target": chosen.label,
                "reason": session.reason,
                "state": session.state,
            },
        )
        if session.state == State.OPENING:
            _start(session, now)
    return session


def _start(session: MaintenanceSession, now: datetime) -> None:
    """Approved: the clock starts and the gateway is asked to dial in."""
    session.expires_at = now + session.duration
    session.save(update_fields=["expires_at"])
    uplink.send_command(
        gateway=session.gateway,
        name="open_tunnel",
        user=SYSTEM,  # the approval was authorized; the server asks the gateway to dial in
        args={
            "session": str(session.pk),
            "url": tunnel_path(session.pk),
            "kind": session.kind,
            "target": session.target,
            "expires_at": session.expires_at.isoformat().replace("+00:00", "Z"),
            "idle_timeout_s": int(session.idle_timeout.total_seconds()),
        },
        ttl=session.duration,
    )


def approve_session(
    *, session: MaintenanceSession, user: Any, ip: str | None = None, now: datetime | None = None
) -> MaintenanceSession:
    """An admin other than the requester lets a waiting session start."""
    now = now or timezone.now()
    with transaction.atomic():
        session = MaintenanceSession.objects.select_for_update().select_related("gateway").get(pk=session.pk)
        authorize(user, Capability.APPROVE_REMOTE_SESSION, session.organization)
        if session.requested_by_id == user.pk:
            raise SessionRefused("A session is approved by someone other than its requester.", code="own_session")
        if session.state != State.AWAITING_APPROVAL:
            raise SessionRefused(f"The session is {session.get_state_display().lower()}, not awaiting approval.")
        session.state = State.OPENING
        session.approved_by = user
        session.approved_at = now
        session.save(update_fields=["state", "approved_by", "approved_at"])
        audit(
            action="remoteaccess.session.approve",
            target=session,
            user=user,
            ip=ip,
            detail={"gateway": session.gateway.serial},
        )
        _start(session, now)
    return session


# --- the two WebSocket ends ----------------------------------------------------------------------


def gateway_connected(*, session_id: Any, gateway: Gateway, now: datetime | None = None) -> MaintenanceSession:
    """The gateway dialled the session's tunnel; refused unless it is this gateway's opening session."""
    now = now or timezone.now()
    with transaction.atomic():
        session = MaintenanceSession.objects.select_for_update().filter(pk=session_id, gateway=gateway).first()
        if session is None:
            raise SessionRefused("No such session for this gateway.", code="unknown_session")
        if session.state != State.OPENING:
            raise SessionRefused(f"The session is {session.get_state_display().lower()}.", code="session_not_open")
        if session.expires_at is not None and session.expires_at <= now:
            raise SessionRefused("The session expired.", code="session_expired")
        session.state = State.ACTIVE
        session.connected_at = now
        session.save(update_fields=["state", "connected_at"])
        audit(action="remoteaccess.session.connect", target=session, gateway=gateway, detail={"end": "gateway"})
    return session


def technician_joins(*, session_id: Any, user: Any, now: datetime | None = None) -> MaintenanceSession:
    """The requester's tool or browser connects, once, while the session is approved and unexpired."""
    now = now or timezone.now()
    with transaction.atomic():
        session = selectors.sessions_visible_to(user).select_for_update(of=("self",)).filter(pk=session_id).first()
        if session is None:
            raise SessionRefused("No such session.", code="unknown_session")
        if session.requested_by_id != user.pk:
            raise PermissionDenied("Only the technician who opened the session may connect to it.")
        authorize(user, Capability.OPEN_REMOTE_SESSION, session.organization)
        if session.state == State.AWAITING_APPROVAL:
            raise SessionRefused("The session is awaiting an admin's approval.", code="awaiting_approval")
        if session.state not in (State.OPENING, State.ACTIVE):
            raise SessionRefused(f"The session is {session.get_state_display().lower()}.", code="session_not_open")
        if session.expires_at is not None and session.expires_at <= now:
            raise SessionRefused("The session expired.", code="session_expired")
        if session.technician_joined_at is not None:
            raise SessionRefused(
                "The session already had its technician connection; open a new session.", code="already_joined"
            )
        session.technician_joined_at = now
        session.save(update_fields=["technician_joined_at"])
        audit(action="remoteaccess.session.connect", target=session, user=user, detail={"end": "technician"})
    return session


def record_connection(*, session_id: Any, stream: int, opened_at: datetime) -> None:
    SessionConnection.objects.get_or_create(session_id=session_id, stream=stream, defaults={"opened_at": opened_at})
    MaintenanceSession.objects.filter(pk=session_id).update(connections=F("connections") + 1)


def record_traffic(
    *, session_id: Any, up: int, down: int, closed: list[dict[str, Any]] | None = None, now: datetime | None = None
) -> None:
    """Add bytes relayed since the last call; `closed` lists connections that ended, with their totals."""
    now = now or timezone.now()
    with transaction.atomic():
        if up or down:
            MaintenanceSession.objects.filter(pk=session_id).update(
                bytes_up=F("bytes_up") + up, bytes_down=F("bytes_down") + down
            )
        for done in closed or []:
            SessionConnection.objects.filter(session_id=session_id, stream=done["stream"]).update(
                closed_at=now, bytes_up=done["up"], bytes_down=done["down"], close_reason=done["reason"][:500]
            )


# --- ending ---------------------------------------------------------------------------------------


def close_session(
    *, session: MaintenanceSession, user: Any, ip: str | None = None, now: datetime | None = None
) -> MaintenanceSession:
    """The requester closes the session, or an admin closes (or, while it waits, denies) it."""
    is_requester = session.requested_by_id == user.pk
    if not is_requester:
        authorize(user, Capability.APPROVE_REMOTE_SESSION, session.organization)
    if session.state == State.AWAITING_APPROVAL and not is_requester:
        state, why = State.REFUSED, f"approval denied by {user.get_username()}"
    else:
        state, why = State.CLOSED, f"closed by {user.get_username()}"
    ended = end_session(session_id=session.pk, state=state, reason=why, user=user, ip=ip, now=now)
    if ended is None:
        raise SessionRefused(f"The session is already {session.get_state_display().lower()}.", code="session_ended")
    return ended


END_ACTIONS = {
    State.CLOSED: "remoteaccess.session.close",
    State.EXPIRED: "remoteaccess.session.expire",
    State.REFUSED: "remoteaccess.session.refuse",
    State.REVOKED: "remoteaccess.session.revoke",
}


def end_session(
    *,
    session_id: Any,
    state: str,
    reason: str,
    user: Any = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> MaintenanceSession | None:
    """End a live session (idempotent: None when it had already ended) and tell both ends at once."""
    now = now or timezone.now()
    with transaction.atomic():
        session = (
            MaintenanceSession.objects.select_for_update()
            .select_related("gateway")
            .filter(pk=session_id, state__in=MaintenanceSession.LIVE_STATES)
            .first()
        )
        if session is None:
            return None
        session.state = state
        session.ended_at = now
        session.end_reason = reason[:500]
        session.save(update_fields=["state", "ended_at", "end_reason"])
        audit(
            action=END_ACTIONS[State(state)],
            target=session,
            user=user,
            ip=ip,
            detail={**_transfer(session), "reason": reason},
        )
        transaction.on_commit(lambda: notify_ends(session.pk, state=state, reason=reason))
    return session


def notify_ends(session_id: Any, *, state: str, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for end in ("gateway", "technician"):
        async_to_sync(layer.group_send)(
            session_group(session_id, end), {"type": "session.end", "state": state, "reason": reason}
        )


def technician_left(*, session_id: Any, user: Any, reason: str, now: datetime | None = None) -> None:
    """The technician's end went away: the session ends with it (nothing stays open unattended)."""
    ended = end_session(session_id=session_id, state=State.CLOSED, reason=reason, user=user, now=now)
    session = ended or MaintenanceSession.objects.select_related("gateway").get(pk=session_id)
    audit(
        action="remoteaccess.session.disconnect",
        target=session,
        user=user,
        detail={**_transfer(session), "end": "technician"},
    )


def gateway_answered(*, session_id: Any, status: str, message: str, result: Any = None) -> None:
    """The gateway's `command_result` for the session's `open_tunnel`."""
    if status == "rejected":
        end_session(session_id=session_id, state=State.REFUSED, reason=f"refused by the gateway: {message}")
    elif status == "failed":
        end_session(session_id=session_id, state=State.CLOSED, reason=f"the gateway's end failed: {message}")
    elif status == "succeeded":
        end_session(session_id=session_id, state=State.CLOSED, reason=f"the gateway's end finished: {message}")


def expire_due_sessions(*, now: datetime | None = None) -> int:
    """Sessions past their end time (also when no WebSocket end is connected to notice)."""
    now = now or timezone.now()
    due = list(selectors.live_sessions(expires_at__lte=now).values_list("pk", flat=True))
    return sum(
        1 for pk in due if end_session(session_id=pk, state=State.EXPIRED, reason="the session expired", now=now)
    )


def revoke_gateway_sessions(*, gateway_id: int, reason: str) -> int:
    due = list(selectors.live_sessions(gateway_id=gateway_id).values_list("pk", flat=True))
    return sum(1 for pk in due if end_session(session_id=pk, state=State.REVOKED, reason=reason))


def revoke_sessions_of_user(*, user: Any, reason: str) -> int:
    """Live sessions whose requester may no longer open them (role removed or changed, deactivated)."""
    revoked = 0
    for session in selectors.live_sessions(requested_by=user).select_related("gateway__organization"):
        if not user_can(user, Capability.OPEN_REMOTE_SESSION, session.gateway.organization):
            revoked += bool(end_session(session_id=session.pk, state=State.REVOKED, reason=reason))
    return revoked
