"""The gateway uplink over WebSockets (Channels communicator through the real routing and pki auth)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.utils import timezone

from fleet.accounts.authorization import SYSTEM
from fleet.inventory.models import FieldDevice, Gateway
from fleet.monitoring import services as monitoring_services
from fleet.monitoring.lifecycle import AlarmState
from fleet.monitoring.models import Alarm, GatewayEvent, LogEntry, StatusReport, TelemetryLatest, TelemetrySample
from fleet.uplink import services as uplink_services
from fleet.uplink.consumer import GatewayConsumer
from fleet.uplink.models import Command
from fleet.uplink.signals import status_reported
from tests.conftest import NOON_PACIFIC
from tests.monitoring.helpers import GatewaySession, alarm, batch, log, telemetry, ts

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def count(model: Any, **filters: Any) -> int:
    return int(model.objects.filter(**filters).count())


@pytest.fixture
def gateway(enrolled_gateway: Any) -> Gateway:
    return enrolled_gateway.gateway


@pytest.fixture
def token(enrolled_gateway: Any) -> str:
    return str(enrolled_gateway.access_token())


@pytest.fixture
def session(token: str) -> GatewaySession:
    return GatewaySession(token)


@pytest.mark.parametrize(("header_token", "code"), [(None, "invalid_access_token"), ("gfa_forged", None)])
async def test_a_peer_without_a_valid_token_gets_an_error_and_close_4401(
    gateway: Gateway, header_token: str | None, code: str | None
) -> None:
    peer = GatewaySession(header_token)
    await peer.connect()
    error = await peer.receive()
    assert error["type"] == "error"
    assert error["code"] == code if code else error["code"]
    assert await peer.close_code() == 4401
    assert await count(LogEntry) == 0


async def test_a_decommissioned_gateway_is_refused(gateway: Gateway, token: str) -> None:
    await database_sync_to_async(Gateway.objects.filter(pk=gateway.pk).update)(status=Gateway.Status.DECOMMISSIONED)
    peer = GatewaySession(token)
    await peer.connect()
    assert (await peer.receive())["code"] == "gateway_decommissioned"
    assert await peer.close_code() == 4401


async def test_hello_is_answered_with_the_committed_position_limits_and_poll_interval(
    session: GatewaySession, settings: Any
) -> None:
    settings.GRIDFLEET_UPDATE_POLL_SECONDS = 120
    welcome = await session.start()
    assert welcome["last_seq"] == 0
    assert welcome["stream"] == "q-test"
    assert welcome["limits"]["max_batch_records"] == 500
    assert welcome["update_poll_interval"] == 120
    await session.disconnect()


async def test_a_batch_is_stored_by_kind_and_acknowledged(session: GatewaySession, gateway: Gateway) -> None:
    await session.start()
    ack = await session.request(
        batch(
            "b1",
            log(1, "agent started"),
            telemetry(2, W=4100.5, Hz=60.01, TmpCab=None),
            alarm(3),
            {"seq": 4, "kind": "event", "ts": ts(), "payload": {"name": "agent.started"}},
            {
                "seq": 5,
                "kind": "status",
                "ts": ts(),
                "payload": {"deployment": 42, "step": "downloading", "progress": 10},
            },
        )
    )
    assert ack == {"type": "ack", "batch": "b1", "last_seq": 5, "stored": 5, "duplicates": 0, "rejected": []}
    assert await count(LogEntry, gateway=gateway, message="agent started") == 1
    assert await count(TelemetrySample, gateway=gateway) == 2  # TmpCab null = missing, not stored
    assert await count(TelemetryLatest, gateway=gateway, point="W", value=4100.5) == 1
    assert await count(Alarm, gateway=gateway, state=AlarmState.ACTIVE_UNACKNOWLEDGED) == 1
    assert await count(GatewayEvent, gateway=gateway, name="agent.started") == 1
    assert await count(StatusReport, gateway=gateway, deployment="42", step="downloading") == 1
    await session.disconnect()


async def test_a_resent_batch_is_acknowledged_and_stored_once(token: str, gateway: Gateway) -> None:
    first = GatewaySession(token)
    await first.start()
    records = [log(10), log(11), telemetry(12)]
    assert (await first.request(batch("b1", *records)))["stored"] == 3
    await first.disconnect()

    # The ack was lost with the connection: the agent resends everything, plus one new record.
    again = GatewaySession(token)
    welcome = await again.start(last_acked_seq=0)
    assert welcome["last_seq"] == 12
    ack = await again.request(batch("b1-resent", *records, log(13)))
    assert ack["last_seq"] == 13 and ack["stored"] == 1 and ack["duplicates"] == 3
    assert await count(LogEntry, gateway=gateway) == 3
    assert await count(TelemetrySample, gateway=gateway) == 1
    await again.disconnect()


async def test_a_new_queue_stream_starts_its_own_sequence(token: str, gateway: Gateway) -> None:
    session = GatewaySession(token)
    await session.start(stream="q-old")
    await session.request(batch("b", log(1), log(2)))
    await session.disconnect()
    fresh = GatewaySession(token)
    assert (await fresh.start(stream="q-new"))["last_seq"] == 0
    assert (await fresh.request(batch("b", log(1))))["stored"] == 1
    assert await count(LogEntry, gateway=gateway) == 3
    await fresh.disconnect()


async def test_nothing_is_acknowledged_or_kept_when_the_commit_fails(session: GatewaySession, gateway: Gateway) -> None:
    await session.start()
    real_insert = monitoring_services.insert_rows

    def logs_go_in_then_the_disk_fails(model: Any, columns: Any, rows: Any) -> None:
        if model is TelemetrySample:
            raise OperationalError("disk I/O error")
        real_insert(model, columns, rows)

    with mock.patch("fleet.monitoring.services.insert_rows", side_effect=logs_go_in_then_the_disk_fails):
        error = await session.request(batch("b1", log(1), telemetry(2)))
    assert error == {
        "type": "error",
        "code": "internal_error",
        "batch": "b1",
        "message": "The batch could not be stored; nothing was kept. Resend it.",
    }
    assert await count(LogEntry, gateway=gateway) == 0
    # The connection survives and the resend after recovery is stored, once.
    ack = await session.request(batch("b1", log(1), telemetry(2)))
    assert ack["stored"] == 2 and ack["last_seq"] == 2
    assert await count(LogEntry, gateway=gateway) == 1
    await session.disconnect()


async def test_the_ack_follows_the_commit(session: GatewaySession, gateway: Gateway) -> None:
    """A receiver inside the batch transaction sees no ack yet; once the ack arrives, data is visible."""
    await session.start()
    seen_in_transaction: list[bool] = []

    def receiver(**kwargs: Any) -> None:
        from django.db import connection

        seen_in_transaction.append(connection.in_atomic_block)

    # Only this receiver: what firmware/ does with reports is not the subject here.
    with mock.patch.object(status_reported, "receivers", []):
        status_reported.connect(receiver)
        await session.send(
            batch("b1", {"seq": 1, "kind": "status", "ts": ts(), "payload": {"deployment": "7", "step": "success"}})
        )
        ack = await session.receive()
    assert seen_in_transaction == [True]
    assert ack["last_seq"] == 1
    assert await count(StatusReport, gateway=gateway, deployment="7") == 1
    await session.disconnect()


async def test_a_failing_status_receiver_does_not_block_the_uplink(session: GatewaySession, gateway: Gateway) -> None:
    def broken(**kwargs: Any) -> None:
        StatusReport.objects.create(
            gateway=gateway, seq=0, ts=timezone.now(), received_at=timezone.now(), deployment="x", step="x", payload={}
        )
        raise RuntimeError("bug in a receiver")

    await session.start()
    with mock.patch.object(status_reported, "receivers", []):
        status_reported.connect(broken)
        status = {"seq": 1, "kind": "status", "ts": ts(), "payload": {"deployment": "7", "step": "success"}}
        ack = await session.request(batch("b1", status, log(2)))
    assert ack["stored"] == 2 and ack["last_seq"] == 2
    # The receiver's own writes were rolled back with its savepoint; the records are kept.
    assert await count(StatusReport, gateway=gateway) == 1
    assert await count(LogEntry, gateway=gateway) == 1
    await session.disconnect()


async def test_first_frame_must_be_hello(session: GatewaySession) -> None:
    await session.connect()
    error = await session.request({"type": "heartbeat"})
    assert error["code"] == "hello_required"
    assert await session.close_code() == 4400


async def test_unsupported_protocol_version_is_refused(session: GatewaySession) -> None:
    await session.connect()
    error = await session.request({"type": "hello", "protocol": 2, "agent_version": "9", "stream": "q"})
    assert error["code"] == "unsupported_protocol"
    assert await session.close_code() == 4400


async def test_protocol_errors_get_error_frames_and_the_connection_survives(
    session: GatewaySession, gateway: Gateway
) -> None:
    await session.start()
    await session.send_text("{this is not json")
    assert (await session.receive())["code"] == "malformed_frame"
    assert (await session.request({"type": "gossip"}))["code"] == "unknown_type"
    assert (await session.request({"type": "hello", "protocol": 1, "agent_version": "1", "stream": "q"}))[
        "code"
    ] == "out_of_protocol"
    oversized = batch("big", log(1, "x" * 1_100_000))
    error = await session.request(oversized)
    assert error["code"] == "frame_too_large" and error.get("batch") is None
    too_many = batch("many", *[log(seq) for seq in range(1, 502)])
    assert (await session.request(too_many)) == {
        "type": "error",
        "code": "batch_too_large",
        "batch": "many",
        "message": "Batch has 501 records; the limit is 500.",
    }
    # Still connected and working.
    ack = await session.request(batch("ok", log(1)))
    assert ack["stored"] == 1
    await session.disconnect()


async def test_a_bad_record_is_rejected_and_the_rest_of_the_batch_kept(
    session: GatewaySession, gateway: Gateway
) -> None:
    await session.start()
    bad_alarm = alarm(2)
    bad_alarm["payload"]["severity"] = "apocalyptic"
    ack = await session.request(
        batch("b", log(1), bad_alarm, {"seq": 3, "kind": "gossip", "ts": ts(), "payload": {}}, log(4))
    )
    assert ack["stored"] == 2 and ack["last_seq"] == 4
    assert [(r["seq"], r["code"]) for r in ack["rejected"]] == [(2, "invalid_record"), (3, "unknown_kind")]
    assert "payload.severity" in ack["rejected"][0]["message"]
    assert await count(LogEntry, gateway=gateway) == 2
    assert await count(Alarm) == 0
    await session.disconnect()


async def test_alarm_records_drive_one_open_alarm_per_condition(session: GatewaySession, gateway: Gateway) -> None:
    await session.start()
    await session.request(batch("b1", alarm(1), alarm(2)))
    assert await count(Alarm, gateway=gateway, occurrences=2, state=AlarmState.ACTIVE_UNACKNOWLEDGED) == 1
    await session.request(batch("b2", alarm(3, state="cleared"), alarm(4, state="cleared")))
    assert await count(Alarm, gateway=gateway, state=AlarmState.CLEARED_UNACKNOWLEDGED) == 1
    await session.request(batch("b3", alarm(5)))
    assert await count(Alarm, gateway=gateway) == 1
    assert await count(Alarm, gateway=gateway, state=AlarmState.ACTIVE_UNACKNOWLEDGED, occurrences=3) == 1
    await session.disconnect()


async def test_inventory_reports_update_attributes_and_field_devices(session: GatewaySession, gateway: Gateway) -> None:
    await session.start()
    report = {
        "seq": 1,
        "kind": "inventory",
        "ts": ts(),
        "payload": {
            "os": "Debian 12",
            "agent_version": "0.9.0",
            "firmware_version": "2.0.9",
            "attributes": {"config_version": "17"},
            "field_devices": [
                {
                    "key": "INV-1",
                    "kind": "inverter",
                    "protocol": "sunspec-tcp",
                    "address": "192.0.2.20:502/1",
                    "make": "SunSpecSim",
                    "serial": "INV-1",
                }
            ],
        },
    }
    assert (await session.request(batch("b", report)))["stored"] == 1
    refreshed = await database_sync_to_async(Gateway.objects.get)(pk=gateway.pk)
    assert refreshed.firmware_version == "2.0.9"
    assert refreshed.attributes["config_version"] == "17" and refreshed.attributes["os"] == "Debian 12"
    assert await count(FieldDevice, gateway=gateway, address="192.0.2.20:502/1", make="SunSpecSim") == 1
    await session.disconnect()


async def test_commands_reach_the_connected_gateway_and_results_are_recorded(
    session: GatewaySession, gateway: Gateway
) -> None:
    await session.start()
    command = await database_sync_to_async(uplink_services.send_command)(
        gateway=gateway, name="set_power_limit", args={"device": "INV-1", "limit_pct": 60}, user=SYSTEM
    )
    frame = await session.receive()
    assert frame["type"] == "command" and frame["id"] == str(command.pk)
    assert frame["name"] == "set_power_limit" and frame["args"] == {"device": "INV-1", "limit_pct": 60}
    result = {
        "seq": 1,
        "kind": "event",
        "ts": ts(),
        "payload": {
            "name": "command_result",
            "data": {
                "command_id": str(command.pk),
                "status": "succeeded",
                "message": "read back 60",
                "result": {"readback_pct": 60},
            },
        },
    }
    await session.request(batch("b", result))
    stored = await database_sync_to_async(Command.objects.get)(pk=command.pk)
    assert stored.state == Command.State.SUCCEEDED and stored.result == {"readback_pct": 60}
    await session.disconnect()


async def test_commands_queued_while_offline_are_sent_after_hello(token: str, gateway: Gateway) -> None:
    command = await database_sync_to_async(uplink_services.send_command)(
        gateway=gateway, name="check_updates", user=SYSTEM
    )
    session = GatewaySession(token)
    await session.start()
    frame = await session.receive()
    assert frame["type"] == "command" and frame["id"] == str(command.pk) and frame["name"] == "check_updates"
    await session.disconnect()


async def test_a_new_connection_supersedes_the_old_one(token: str) -> None:
    old = GatewaySession(token)
    await old.start()
    new = GatewaySession(token)
    await new.start()
    assert await old.close_code() == 4409
    assert (await new.request(batch("b", log(1))))["stored"] == 1
    await new.disconnect()


async def test_last_seen_is_written_on_disconnect_not_per_message(session: GatewaySession, gateway: Gateway) -> None:
    await session.start()
    before = (await database_sync_to_async(Gateway.objects.get)(pk=gateway.pk)).last_seen
    for _ in range(5):
        await session.send({"type": "heartbeat"})
    assert await session.nothing_more()
    assert (await database_sync_to_async(Gateway.objects.get)(pk=gateway.pk)).last_seen == before
    await session.disconnect()
    assert (await database_sync_to_async(Gateway.objects.get)(pk=gateway.pk)).last_seen > before


@pytest.mark.django_db  # no other thread involved: no need for the slow transactional flush
def test_an_unknown_command_or_bad_arguments_are_refused(enrolled_gateway: Any) -> None:
    from fleet.core.errors import DomainError

    with pytest.raises(DomainError, match="Unknown command 'selfdestruct'"):
        uplink_services.send_command(gateway=enrolled_gateway.gateway, name="selfdestruct", user=SYSTEM)
    with pytest.raises(DomainError, match=r"args\.limit_pct"):
        uplink_services.send_command(
            gateway=enrolled_gateway.gateway,
            name="set_power_limit",
            args={"device": "x", "limit_pct": 150},
            user=SYSTEM,
        )
    assert Command.objects.count() == 0


@pytest.mark.django_db  # no other thread involved: no need for the slow transactional flush
def test_expired_commands_are_not_delivered(enrolled_gateway: Any) -> None:
    command = uplink_services.send_command(
        gateway=enrolled_gateway.gateway, name="reboot", ttl=timedelta(seconds=1), user=SYSTEM
    )
    later = timezone.now() + timedelta(seconds=2)
    assert uplink_services.commands_to_deliver(gateway=enrolled_gateway.gateway, now=later) == []
    command.refresh_from_db()
    assert command.state == Command.State.EXPIRED
    assert json.dumps(uplink_services.command_frame(command))


@pytest.mark.django_db  # no other thread involved: no need for the slow transactional flush
def test_operators_send_commands_through_the_api_with_per_command_capabilities(
    enrolled_gateway: Any, api_client_for: Any, other_organization: Any
) -> None:
    from fleet.accounts.roles import Role
    from tests.factories import GatewayFactory, member

    gateway = enrolled_gateway.gateway
    operator = api_client_for(member(gateway.organization, Role.OPERATOR))
    viewer = api_client_for(member(gateway.organization, Role.VIEWER))
    technician = api_client_for(member(gateway.organization, Role.TECHNICIAN))
    url = "/api/uplink/commands/"

    created = operator.post(url, {"gateway": gateway.pk, "name": "check_updates"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["state"] == "pending"
    assert viewer.post(url, {"gateway": gateway.pk, "name": "reboot"}, format="json").status_code == 403
    assert technician.post(url, {"gateway": gateway.pk, "name": "reboot"}, format="json").status_code == 403
    tunnel = {
        "gateway": gateway.pk,
        "name": "open_tunnel",
        "args": {"url": "wss://t", "expires_at": "2026-11-26T14:00:00Z"},
    }
    # A tunnel is opened as a maintenance session (tests/remoteaccess/), never as a bare command.
    refused = technician.post(url, tunnel, format="json")
    assert refused.status_code == 400 and "/api/remote-access/sessions/" in refused.json()["fields"]["name"][0]
    power = {"gateway": gateway.pk, "name": "set_power_limit", "args": {"device": "x", "limit_pct": 101}}
    bad = operator.post(url, power, format="json")
    assert bad.status_code == 400 and "args.limit_pct" in bad.json()["fields"]["args"][0]
    foreign = GatewayFactory(organization=other_organization)
    assert operator.post(url, {"gateway": foreign.pk, "name": "reboot"}, format="json").status_code == 400
    assert [c["name"] for c in viewer.get(url).json()["results"]] == ["check_updates"]


@pytest.mark.django_db  # no other thread involved: no need for the slow transactional flush
def test_upload_logs_round_trip(enrolled_gateway: Any, enroll_gateway: Any, api_client_for: Any) -> None:
    import gzip

    from rest_framework.test import APIClient

    from fleet.accounts.roles import Role
    from tests.factories import member

    gateway = enrolled_gateway.gateway
    command = uplink_services.send_command(
        gateway=gateway, name="upload_logs", args={"since": "2026-11-26T00:00:00Z"}, user=SYSTEM
    )
    upload_url = command.args["upload_url"]
    assert upload_url == f"/gw/v1/logs/{command.pk}"
    body = gzip.compress(b"Nov 26 12:00:01 gw agent[1]: started\n" * 1000)

    device = APIClient()
    device.credentials(HTTP_AUTHORIZATION=f"Bearer {enrolled_gateway.access_token()}")
    response = device.put(upload_url, body, content_type="application/gzip")
    assert response.status_code == 201, response.content
    assert response.json()["bytes"] == len(body)

    other = enroll_gateway()
    intruder = APIClient()
    intruder.credentials(HTTP_AUTHORIZATION=f"Bearer {other.access_token()}")
    assert intruder.put(upload_url, b"x", content_type="application/gzip").status_code == 404
    assert APIClient().put(upload_url, b"x", content_type="application/gzip").status_code in (401, 403)

    viewer = api_client_for(member(gateway.organization, Role.VIEWER))
    download = viewer.get(f"/api/uplink/commands/{command.pk}/log-upload/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == body

    Command.objects.filter(pk=command.pk).update(state=Command.State.SUCCEEDED)
    assert device.put(upload_url, body, content_type="application/gzip").status_code == 409


@pytest.mark.django_db
def test_presence_flush_writes_many_sightings_in_few_statements_and_never_backwards(
    organization: Any, django_assert_max_num_queries: Any
) -> None:

    from fleet.inventory.presence import PresenceTracker

    gateways = Gateway.objects.bulk_create(
        [Gateway(organization=organization, serial=f"P-{n:05d}", hardware_model="GF-100") for n in range(1200)]
    )
    seen_at = NOON_PACIFIC.replace(hour=13, minute=0, second=5, microsecond=250000)
    newer = seen_at + timedelta(minutes=5)
    Gateway.objects.filter(pk=gateways[0].pk).update(last_seen=newer)  # written meanwhile by another process
    tracker = PresenceTracker()
    for gateway in gateways:
        tracker.seen(gateway.pk, seen_at)
    with django_assert_max_num_queries(3):  # 1200 sightings in one second: three chunks of 500
        assert tracker.flush() == 1199
    assert Gateway.objects.get(pk=gateways[0].pk).last_seen == newer
    assert Gateway.objects.get(pk=gateways[1].pk).last_seen == seen_at
    assert tracker.flush() == 0


async def test_with_the_in_memory_layer_frames_pick_up_commands_from_other_processes(
    session: GatewaySession, gateway: Gateway, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("InMemoryChannelLayer"):
        pytest.skip("with Redis every process hears of every command")
    monkeypatch.setattr(GatewayConsumer, "COMMAND_POLL_S", 0.0)
    await session.start()
    # Created elsewhere (a shell, a worker): the in-memory layer of this process never hears of it.
    with mock.patch.object(uplink_services, "_notify_connection"):
        command = await database_sync_to_async(uplink_services.send_command)(
            gateway=gateway, name="check_updates", user=SYSTEM
        )
    await session.send({"type": "heartbeat"})
    frame = await session.receive()
    assert frame["type"] == "command" and frame["id"] == str(command.pk)
    await session.send({"type": "heartbeat"})
    assert await session.nothing_more()  # sent once; a reconnection would send it again
    await session.disconnect()
