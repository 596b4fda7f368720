"""Long-lived WebSockets on the Redis channel layer, across two ASGI worker processes (issue 19).

redis-py 8's defaults closed every idle socket after 5 s (a socket timeout equal to the layer's
blocking wait) and refused bursts beyond 100 pooled connections; fleet/core/channel_layer.py sets both.
These tests run two uvicorn processes on PostgreSQL and Redis, as production does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from websockets.asyncio.client import connect as connect_async
from websockets.sync.client import ClientConnection, connect

from tests.monitoring.helpers import alarm, batch, hello
from tests.production.stack import Stack
from tests.servers import wait_for

pytestmark = pytest.mark.slow

# Longer than redis-py 8's 5 s socket timeout and the channel layer's 5 s blocking wait together.
IDLE_S = 12
BURST = 300


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("redis-stack"), production=False)
    try:
        stack.manage("migrate", "--noinput", "-v0")
        stack.fleet = stack.action("gateways", str(BURST + 1))  # type: ignore[attr-defined]
        stack.ports = [stack.start_uvicorn("asgi-a"), stack.start_uvicorn("asgi-b")]  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.close()


def uplink(port: int, token: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{port}/ws/gateway/v1/", additional_headers={"Authorization": f"Bearer {token}"})


def receive(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=timeout)))


def no_redis_errors(stack: Stack) -> None:
    for name in ("asgi-a", "asgi-b"):
        text = stack.log_text(name)
        assert "redis.exceptions" not in text and "Traceback" not in text, f"{name} logged:\n{text[-4000:]}"


def test_idle_uplink_and_console_on_two_workers_stay_open_past_the_redis_timeouts(stack: Stack) -> None:
    port_a, port_b = stack.ports  # type: ignore[attr-defined]
    gateway = stack.fleet["gateways"]["STACK-0001"]  # type: ignore[attr-defined]
    cookie = {"Cookie": f"sessionid={stack.fleet['session']}"}  # type: ignore[attr-defined]
    with (
        uplink(port_a, gateway["token"]) as gateway_ws,
        connect(
            f"ws://127.0.0.1:{port_b}/ws/console/", origin=f"http://127.0.0.1:{port_b}", additional_headers=cookie
        ) as console_ws,
    ):
        gateway_ws.send(json.dumps(hello()))
        assert receive(gateway_ws)["type"] == "welcome"

        # Idle: no frame either way. A drop shows as a close frame (or an error) on recv.
        started = time.monotonic()
        for ws in (gateway_ws, console_ws):
            with pytest.raises(TimeoutError):
                ws.recv(timeout=max(0.1, IDLE_S - (time.monotonic() - started)))

        # Both sockets still deliver, across the two processes, through Redis:
        # a command created in a third process reaches the gateway on worker A ...
        stack.action("command", "STACK-0001", "check_updates")
        assert receive(gateway_ws)["name"] == "check_updates"
        # ... and an alarm the gateway streams into worker A reaches the console on worker B.
        gateway_ws.send(json.dumps(batch("b1", alarm(1, code="sunspec.evt1.over_temperature"))))
        assert receive(gateway_ws)["type"] == "ack"
        pushed = receive(console_ws)
        assert pushed["type"] == "alarm" and pushed["alarm"]["code"] == "sunspec.evt1.over_temperature"
    no_redis_errors(stack)


def test_a_few_hundred_uplinks_open_and_close_at_once_without_a_redis_error(stack: Stack) -> None:
    ports = stack.ports  # type: ignore[attr-defined]
    gateways = [g for serial, g in sorted(stack.fleet["gateways"].items()) if serial != "STACK-0001"]  # type: ignore[attr-defined]
    assert len(gateways) == BURST
    client = redis.Redis.from_url(stack.redis_url)
    group_keys = [f"asgi:group:uplink.gateway.{g['id']}" for g in gateways]
    client.delete(*group_keys)  # a group left by an earlier run on the same Redis index

    async def session(index: int, gateway: dict[str, Any], opened: asyncio.Event, release: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{ports[index % 2]}/ws/gateway/v1/"
        async with connect_async(
            url, additional_headers={"Authorization": f"Bearer {gateway['token']}"}, open_timeout=60
        ) as ws:
            await ws.send(json.dumps(hello()))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert welcome["type"] == "welcome", welcome
            opened.set()
            await release.wait()

    async def burst() -> None:
        release = asyncio.Event()
        events = [asyncio.Event() for _ in gateways]
        tasks = [asyncio.create_task(session(i, g, events[i], release)) for i, g in enumerate(gateways)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 120)
        # Every gateway is in its group (the supersede check and group_add went through) ...
        assert sum(client.zcard(key) for key in group_keys) == BURST
        release.set()  # ... then all of them disconnect at once.
        await asyncio.gather(*tasks)

    asyncio.run(burst())
    # Every disconnect left its group and wrote the gateway's last-seen time.
    wait_for(lambda: sum(client.zcard(key) for key in group_keys) == 0, timeout=30, what="groups to empty")
    ids = [g["id"] for g in gateways]
    (seen,) = stack.query("SELECT count(*) FROM inventory_gateway WHERE id = ANY(%s) AND last_seen IS NOT NULL", ids)
    assert seen[0] == BURST
    no_redis_errors(stack)
