"""What the uplink does with a gateway's session: open its stream, ingest batches, send commands.

`ingest_batch` is the heart of "nothing lost, nothing twice": one transaction per batch holds the
stream row lock, skips records at or below the committed position, stores the rest in bulk by kind,
and moves the position; the consumer acknowledges only after it returns (i.e. after the commit).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from fleet.accounts.authorization import SYSTEM, Actor, authorize, person
from fleet.accounts.roles import Capability
from fleet.audit.services import record as audit
from fleet.core.errors import DomainError
from fleet.core.timestamps import rfc3339
from fleet.inventory.models import FieldDevice, Gateway
from fleet.inventory.presence import tracker
from fleet.inventory.services import activate_gateway, report_gateway_attributes
from fleet.monitoring import services as monitoring
from fleet.monitoring.services import IncomingRecord

from .models import Command, UplinkStream
from .protocol import CommandName, ErrorCode, Hello, Kind, ParsedRecords, Rejection, command_args_error
from .signals import command_result_received, events_received, status_reported

logger = logging.getLogger(__name__)

COMMAND_TTL = timedelta(minutes=15)
COMMAND_CAPABILITY = {
    CommandName.CHECK_UPDATES: Capability.MANAGE_DEPLOYMENTS,
    CommandName.UPLOAD_LOGS: Capability.TRIAGE_ALARMS,
    CommandName.REBOOT: Capability.MANAGE_INVENTORY,
    CommandName.OPEN_TUNNEL: Capability.OPEN_REMOTE_SESSION,
    CommandName.SET_POWER_LIMIT: Capability.MANAGE_DEPLOYMENTS,
}
COMMAND_RESULT_STATES = {
    "accepted": Command.State.ACCEPTED,
    "succeeded": Command.State.SUCCEEDED,
    "failed": Command.State.FAILED,
    "rejected": Command.State.REJECTED,
}


def gateway_group(gateway_id: int) -> str:
    """The channel-layer group of a gateway's live connection (commands, superseding)."""
    return f"uplink.gateway.{gateway_id}"


def open_stream(*, gateway: Gateway, hello: Hello, now: datetime | None = None) -> UplinkStream:
    """A gateway said hello: note its stream and version, and it is online again."""
    now = now or timezone.now()
    with transaction.atomic():
        stream, created = UplinkStream.objects.select_for_update().get_or_create(
            gateway=gateway, stream=hello.stream, defaults={"agent_version": hello.agent_version}
        )
        if not created and stream.agent_version != hello.agent_version:
            stream.agent_version = hello.agent_version
            stream.save(update_fields=["agent_version", "updated"])
        if gateway.status == Gateway.Status.REGISTERED:
            activate_gateway(gateway=gateway)
        Gateway.objects.filter(pk=gateway.pk).update(last_seen=now)
        monitoring.gateway_came_online(gateway=gateway, now=now)
    if hello.last_acked_seq > stream.last_seq:
        logger.warning(
            "Gateway %s stream %s claims ack %s beyond the committed %s",
            gateway.serial,
            stream.stream,
            hello.last_acked_seq,
            stream.last_seq,
        )
    return stream


@dataclass
class IngestResult:
    last_seq: int
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def ack(self, batch: str) -> dict[str, Any]:
        return {
            "type": "ack",
            "batch": batch,
            "last_seq": self.last_seq,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
        }


def ingest_batch(*, gateway: Gateway, stream: str, parsed: ParsedRecords, now: datetime | None = None) -> IngestResult:
    """Store a batch once, whatever how often it is sent. Raises on database failure (no ack then)."""
    now = now or timezone.now()
    with transaction.atomic():
        position = UplinkStream.objects.select_for_update().get(gateway=gateway, stream=stream)
        committed = position.last_seq
        result = IngestResult(last_seq=committed, rejected=list(parsed.rejected))
        by_kind: dict[Kind, list[IncomingRecord]] = defaultdict(list)
        for parsed_record in parsed.records:
            if parsed_record.seq <= committed:
                result.duplicates += 1
            else:
                by_kind[parsed_record.kind].append(
                    IncomingRecord(seq=parsed_record.seq, ts=parsed_record.ts, payload=parsed_record.payload)
                )
        if by_kind[Kind.LOG]:
            monitoring.store_logs(gateway=gateway, records=by_kind[Kind.LOG], received_at=now)
        if by_kind[Kind.TELEMETRY]:
            monitoring.store_telemetry(gateway=gateway, records=by_kind[Kind.TELEMETRY])
        if by_kind[Kind.EVENT]:
            events = monitoring.store_events(gateway=gateway, records=by_kind[Kind.EVENT], received_at=now)
            _apply_command_results(gateway, by_kind[Kind.EVENT], now)
            events_received.send(sender=Gateway, gateway=gateway, events=events)
        if by_kind[Kind.STATUS]:
            reports = monitoring.store_status_reports(gateway=gateway, records=by_kind[Kind.STATUS], received_at=now)
            _hand_over_status_reports(gateway, reports)
        stored = sum(len(records) for records in by_kind.values())
        # Alarms and inventory change state record by record; one refused must not sink the batch.
        with monitoring.announcing_together():
            for kind, apply_one in ((Kind.ALARM, _apply_alarm), (Kind.INVENTORY, _apply_inventory)):
                for rec in by_kind[kind]:
                    try:
                        with transaction.atomic():
                            apply_one(gateway, rec)
                    except (DomainError, ValidationError, IntegrityError) as exc:
                        stored -= 1
                        result.rejected.append(Rejection(-1, rec.seq, ErrorCode.INVALID_RECORD, _reason(exc)))
        result.stored = stored
        seqs = [r.seq for r in parsed.records] + [r.seq for r in parsed.rejected if r.seq is not None]
        result.last_seq = max([committed, *seqs])
        if result.last_seq != committed:
            position.last_seq = result.last_seq
            position.save(update_fields=["last_seq", "updated"])
    tracker.seen(gateway.pk, now)
    return result


def _hand_over_status_reports(gateway: Gateway, reports: list[Any]) -> None:
    """Receivers (firmware/) run in a savepoint of the batch: a bug in one must not block the uplink.

    Otherwise every resend of the batch would fail again, and the gateway's logs and alarms would
    queue up behind it forever. The reports stay stored for a later replay.
    """
    try:
        with transaction.atomic():
            status_reported.send(sender=Gateway, gateway=gateway, reports=reports)
    except Exception:
        logger.exception(
            "A status_reported receiver failed for gateway %s; reports stored, not applied", gateway.serial
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return "The record conflicts with stored data."


def _apply_alarm(gateway: Gateway, rec: IncomingRecord) -> None:
    p = rec.payload
    monitoring.report_condition(
        gateway=gateway,
        source=p["source"],
        code=p["code"],
        severity=p["severity"],
        raised=p["state"] == "raised",
        message=p["message"],
        device=p.get("device", ""),
        details=p.get("details"),
        at=rec.ts,
    )


INVENTORY_ATTRIBUTES = ("hardware_model", "os", "agent_version", "firmware_version")


def _apply_inventory(gateway: Gateway, rec: IncomingRecord) -> None:
    p = rec.payload
    attributes = dict(p.get("attributes") or {})
    attributes.update({key: p[key] for key in INVENTORY_ATTRIBUTES if key in p})
    report_gateway_attributes(gateway=gateway, attributes=attributes)
    for device in p.get("field_devices") or []:
        values = {
            "kind": device["kind"],
            "make": device.get("make", ""),
            "model": device.get("model", ""),
            "serial": device.get("serial", ""),
            "firmware_version": device.get("firmware_version", ""),
            "last_seen": rec.ts,
        }
        found = FieldDevice.objects.filter(gateway=gateway, protocol=device["protocol"], address=device["address"])
        if found.exists():
            found.update(**values)
        else:
            created = FieldDevice(gateway=gateway, protocol=device["protocol"], address=device["address"], **values)
            created.full_clean()
            created.save()
            audit(action="fielddevice.create", target=created, gateway=gateway, after={"address": created.address})


def _apply_command_results(gateway: Gateway, events: list[IncomingRecord], now: datetime) -> None:
    for rec in events:
        if rec.payload["name"] != "command_result":
            continue
        data = rec.payload.get("data") or {}
        state = COMMAND_RESULT_STATES.get(str(data.get("status")))
        command_id = _uuid_or_none(data.get("command_id"))
        command = Command.objects.filter(gateway=gateway, pk=command_id).first() if command_id else None
        if command is None or state is None:
            logger.info("Ignoring command_result %r from %s", data, gateway.serial)
            continue
        command.state = state
        command.result_message = str(data.get("message", ""))[:2000]
        command.result = data.get("result")
        if state != Command.State.ACCEPTED:
            command.completed_at = now
        command.save(update_fields=["state", "result_message", "result", "completed_at"])
        command_result_received.send(sender=Command, gateway=gateway, command=command)


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


# --- commands ---------------------------------------------------------------------------------


def send_command(
    *,
    gateway: Gateway,
    name: str,
    args: dict[str, Any] | None = None,
    user: Actor,
    ttl: timedelta = COMMAND_TTL,
    ip: str | None = None,
) -> Command:
    """Queue a command for a gateway; it goes out now if the gateway is connected, else on its next hello.

    `user` is `SYSTEM` when the server itself asks (e.g. a deployment wanting an immediate update check).
    """
    try:
        command_name = CommandName(name)
    except ValueError:
        raise DomainError(
            f"Unknown command '{name}'; one of {', '.join(c.value for c in CommandName)}.", field="name"
        ) from None
    if command_name == CommandName.OPEN_TUNNEL and user is not SYSTEM:
        # A tunnel belongs to a maintenance session (role, allow-list, approval, audit, recording).
        raise DomainError(
            "open_tunnel is sent by the server for a maintenance session; open one at /api/remote-access/sessions/.",
            field="name",
        )
    args = dict(args or {})
    command_id = uuid.uuid4()
    if command_name == CommandName.UPLOAD_LOGS:
        # Where the agent PUTs the file: this server's upload endpoint for this very command.
        args.setdefault("upload_url", f"/gw/v1/logs/{command_id}")
    problem = command_args_error(command_name, args)
    if problem:
        raise DomainError(problem, field="args")
    authorize(user, COMMAND_CAPABILITY[command_name], gateway.organization_id)
    with transaction.atomic():
        command = Command.objects.create(
            id=command_id,
            gateway=gateway,
            name=command_name,
            args=args,
            created_by=person(user),
            expires_at=timezone.now() + ttl,
        )
        audit(
            action=f"gateway.command.{command_name}",
            target=gateway,
            user=user,
            ip=ip,
            detail={"command_id": str(command.pk), "args": args},
        )
        transaction.on_commit(lambda: _notify_connection(gateway.pk, str(command_id)))
    return command


def _notify_connection(gateway_id: int, command_id: str) -> None:
    _notify_connections([(gateway_id, command_id)])


def _notify_connections(deliveries: list[tuple[int, str]]) -> None:
    """Tell each gateway's live connection (whichever ASGI process holds it) to deliver its command."""
    layer = get_channel_layer()
    if layer is None or not deliveries:
        return

    async def send_all() -> None:
        await asyncio.gather(
            *(
                layer.group_send(gateway_group(gateway_id), {"type": "command.deliver", "command_id": command_id})
                for gateway_id, command_id in deliveries
            )
        )

    async_to_sync(send_all)()


UPDATE_CHECK_TTL = timedelta(minutes=10)


def request_update_check(*, gateway_ids: Sequence[int], reason: str, now: datetime | None = None) -> int:
    """Ask the connected ones among `gateway_ids` to check for updates now rather than at their next
    poll (up to GRIDFLEET_UPDATE_POLL_SECONDS later); returns how many were asked.

    The server asks on its own (no user): after a deployment assigned and published their targets.
    Gateways not seen within GATEWAY_OFFLINE_AFTER are left alone: they check when they reconnect.
    One check_updates command per gateway, created in bulk, one audit entry for the lot.
    """
    now = now or timezone.now()
    online = list(
        Gateway.objects.filter(pk__in=list(gateway_ids), last_seen__gte=now - settings.GATEWAY_OFFLINE_AFTER)
        .exclude(status=Gateway.Status.DECOMMISSIONED)
        .values_list("pk", flat=True)
    )
    if not online:
        return 0
    with transaction.atomic():
        commands = Command.objects.bulk_create(
            [
                Command(
                    id=uuid.uuid4(),
                    gateway_id=gateway_id,
                    name=CommandName.CHECK_UPDATES,
                    args={},
                    expires_at=now + UPDATE_CHECK_TTL,
                )
                for gateway_id in online
            ],
            batch_size=2000,
        )
        audit(action="gateway.command.check_updates.bulk", detail={"gateways": len(online), "reason": reason})
        deliveries = [(command.gateway_id, str(command.pk)) for command in commands]
        transaction.on_commit(lambda: _notify_connections(deliveries))
    return len(online)


def commands_to_deliver(*, gateway: Gateway, now: datetime | None = None) -> list[Command]:
    """Pending commands, and sent ones without a result (the connection may have dropped)."""
    now = now or timezone.now()
    open_commands = Command.objects.filter(gateway=gateway, state__in=[Command.State.PENDING, Command.State.SENT])
    open_commands.filter(expires_at__lte=now).update(state=Command.State.EXPIRED, completed_at=now)
    return list(open_commands.filter(expires_at__gt=now).order_by("created"))


def mark_command_sent(*, command_id: str, now: datetime | None = None) -> Command | None:
    """The command, marked sent, if it is still to be delivered; None when expired or answered."""
    now = now or timezone.now()
    with transaction.atomic():
        command = Command.objects.select_for_update().filter(pk=command_id).first()
        if command is None or command.state not in (Command.State.PENDING, Command.State.SENT):
            return None
        if command.expires_at <= now:
            command.state = Command.State.EXPIRED
            command.completed_at = now
            command.save(update_fields=["state", "completed_at"])
            return None
        command.state = Command.State.SENT
        command.sent_at = now
        command.save(update_fields=["state", "sent_at"])
        return command


def command_frame(command: Command) -> dict[str, Any]:
    return {
        "type": "command",
        "id": str(command.pk),
        "name": command.name,
        "args": command.args,
        "expires_at": rfc3339(command.expires_at),
    }
