"""Real connections to a running ASGI server (uvicorn on a loopback port): gateway and browser sessions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from fleet.accounts.roles import Role
from fleet.monitoring.models import Alarm
from tests.factories import GatewayFactory, member
from tests.monitoring.helpers import alarm, batch, hello, log

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def gateway_socket(server: str, token: str | None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return connect(f"ws://{server}/ws/gateway/v1/", additional_headers=headers, open_timeout=5)


def console_socket(server: str, cookie: str) -> ClientConnection:
    return connect(f"ws://{server}/ws/console/", origin=f"http://{server}", additional_headers={"Cookie": cookie})


def exchange(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(frame))
    return dict(json.loads(ws.recv(timeout=5)))


def test_a_gateway_without_a_token_is_refused_over_a_real_connection(asgi_server: str) -> None:
    with gateway_socket(asgi_server, None) as ws:
        assert json.loads(ws.recv(timeout=5))["code"] == "invalid_access_token"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_gateway_alarm_reaches_the_console_of_its_organization_only(
    asgi_server: str, organization: Any, other_organization: Any, enroll_gateway: Any
) -> None:
    enrolled = enroll_gateway(GatewayFactory(organization=organization))
    our_cookie = session_cookie(member(organization, Role.VIEWER))
    their_cookie = session_cookie(member(other_organization, Role.ADMIN))
    with (
        console_socket(asgi_server, our_cookie) as ours,
        console_socket(asgi_server, their_cookie) as theirs,
        gateway_socket(asgi_server, enrolled.access_token()) as gateway,
    ):
        assert exchange(gateway, hello())["type"] == "welcome"
        ack = exchange(gateway, batch("b1", log(1), alarm(2, code="sunspec.evt1.over_temperature")))
        assert ack["last_seq"] == 2 and ack["stored"] == 2
        # Resent after a lost ack: acknowledged, not stored twice.
        again = exchange(gateway, batch("b1", log(1), alarm(2, code="sunspec.evt1.over_temperature")))
        assert again["duplicates"] == 2 and again["stored"] == 0
        pushed = json.loads(ours.recv(timeout=5))
        assert pushed["type"] == "alarm" and pushed["alarm"]["code"] == "sunspec.evt1.over_temperature"
        with pytest.raises(TimeoutError):
            theirs.recv(timeout=0.5)
    assert Alarm.objects.get().occurrences == 1


def test_protocol_errors_over_a_real_connection_leave_it_open(asgi_server: str, enrolled_gateway: Any) -> None:
    with connect(
        f"ws://{asgi_server}/ws/gateway/v1/",
        additional_headers={"Authorization": f"Bearer {enrolled_gateway.access_token()}"},
        max_size=None,
    ) as ws:
        assert exchange(ws, hello())["type"] == "welcome"
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=5))["code"] == "malformed_frame"
        ws.send(json.dumps(batch("big", log(1, "x" * 1_200_000))))  # over 1 MiB, under uvicorn's 16 MiB
        assert json.loads(ws.recv(timeout=5))["code"] == "frame_too_large"
        bad = alarm(2)
        bad["payload"]["state"] = "smouldering"
        ack = exchange(ws, batch("b", log(1), bad))
        assert ack["stored"] == 1 and ack["rejected"][0]["seq"] == 2
