"""The browser WebSocket /ws/console/: live alarm changes reach the right organizations only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client

from fleet.accounts.roles import Role
from fleet.routing import build_websocket_router
from tests.factories import GatewayFactory, member
from tests.monitoring.helpers import GatewaySession, alarm, batch, log

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


def console(cookie: str | None, origin: bytes = b"http://localhost") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(build_websocket_router(), "/ws/console/", headers=headers)


@pytest.fixture
def setup(organization: Any, other_organization: Any, enroll_gateway: Any) -> dict[str, Any]:
    ours = enroll_gateway(GatewayFactory(organization=organization))
    return {
        "token": ours.access_token(),
        "gateway": ours.gateway,
        "our_viewer": session_cookie(member(organization, Role.VIEWER)),
        "their_admin": session_cookie(member(other_organization, Role.ADMIN)),
    }


async def test_an_alarm_raised_by_a_gateway_reaches_its_organization_and_no_other(setup: dict[str, Any]) -> None:
    ours, theirs = console(setup["our_viewer"]), console(setup["their_admin"])
    assert (await ours.connect())[0] and (await theirs.connect())[0]
    gateway = GatewaySession(setup["token"])
    await gateway.start()
    ack = await gateway.request(batch("b1", alarm(1, code="sunspec.evt1.ground_fault")))
    assert ack["stored"] == 1
    message = json.loads(await ours.receive_from(timeout=5))
    assert message["type"] == "alarm"
    assert message["alarm"]["code"] == "sunspec.evt1.ground_fault"
    assert message["alarm"]["gateway_serial"] == setup["gateway"].serial
    assert message["alarm"]["state"] == "active_unacknowledged"
    assert await theirs.receive_nothing(timeout=0.5)
    await gateway.disconnect()
    await ours.disconnect()
    await theirs.disconnect()


async def test_anonymous_and_cross_site_consoles_are_refused(setup: dict[str, Any]) -> None:
    anonymous = console(None)
    assert (await anonymous.connect())[0] is False
    cross_site = console(setup["our_viewer"], origin=b"https://evil.example")
    assert (await cross_site.connect())[0] is False


async def test_log_tail_only_for_visible_gateways(setup: dict[str, Any]) -> None:
    theirs = console(setup["their_admin"])
    await theirs.connect()
    await theirs.send_json_to({"subscribe": "logs", "gateway": setup["gateway"].pk})
    assert (await theirs.receive_json_from())["type"] == "error"

    ours = console(setup["our_viewer"])
    await ours.connect()
    await ours.send_json_to({"subscribe": "logs", "gateway": setup["gateway"].pk})
    assert await ours.receive_json_from() == {"type": "subscribed", "logs": setup["gateway"].pk}
    gateway = GatewaySession(setup["token"])
    await gateway.start()
    await gateway.request(batch("b1", log(1, "inverter 1 answered"), log(2, "poll done", level="debug")))
    tail = await ours.receive_json_from(timeout=5)
    assert tail["type"] == "logs"
    assert [e["message"] for e in tail["entries"]] == ["inverter 1 answered", "poll done"]
    assert await theirs.receive_nothing(timeout=0.3)
    for communicator in (gateway, ours, theirs):
        await communicator.disconnect()


async def test_operator_actions_are_pushed_too(setup: dict[str, Any], organization: Any) -> None:
    from fleet.monitoring import services
    from fleet.monitoring.lifecycle import Action
    from fleet.monitoring.models import Alarm

    ours = console(setup["our_viewer"])
    await ours.connect()
    gateway = GatewaySession(setup["token"])
    await gateway.start()
    await gateway.request(batch("b1", alarm(1)))
    assert (await ours.receive_json_from(timeout=5))["alarm"]["state"] == "active_unacknowledged"
    operator = await database_sync_to_async(member)(organization, Role.OPERATOR)
    raised = await database_sync_to_async(Alarm.objects.get)()
    await database_sync_to_async(services.act_on_alarm)(alarm=raised, action=Action.ACKNOWLEDGE, user=operator)
    assert (await ours.receive_json_from(timeout=5))["alarm"]["state"] == "active_acknowledged"
    await gateway.disconnect()
    await ours.disconnect()
