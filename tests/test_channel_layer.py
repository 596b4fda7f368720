"""The Redis channel layer as configured by fleet/settings.py (fleet/core/channel_layer.py says why)."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from fleet.core.channel_layer import RedisChannelLayer


def test_a_socket_timeout_that_idle_consumers_would_hit_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="REDIS_SOCKET_TIMEOUT"):
        RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 5}])


@pytest.fixture
def configured_layer(settings) -> RedisChannelLayer:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (REDIS_URL)")
    config = settings.CHANNEL_LAYERS["default"]
    assert config["BACKEND"] == "fleet.core.channel_layer.RedisChannelLayer"
    return RedisChannelLayer(**config["CONFIG"], prefix="test-idle")


async def test_an_idle_receive_outlasts_the_blocking_wait_and_then_gets_its_message(
    configured_layer: RedisChannelLayer,
) -> None:
    channel = await configured_layer.new_channel()
    # Longer than the layer's 5 s blocking wait, which with redis-py 8's 5 s default socket timeout
    # ended in redis.exceptions.TimeoutError.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(configured_layer.receive(channel), 11)
    await configured_layer.send(channel, {"type": "still.here"})
    assert await asyncio.wait_for(configured_layer.receive(channel), 5) == {"type": "still.here"}
    await configured_layer.flush()


async def test_a_burst_beyond_the_pool_size_waits_for_connections_instead_of_failing(settings) -> None:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (REDIS_URL)")
    host = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0], max_connections=10)
    layer = RedisChannelLayer(hosts=[host], prefix="test-burst")
    channel = await layer.new_channel()

    async def join_and_leave(n: int) -> None:
        await layer.group_add(f"burst.{n % 50}", channel)
        await layer.group_discard(f"burst.{n % 50}", channel)

    # 1,000 concurrent commands on a 10-connection pool; redis-py's default pool raised
    # MaxConnectionsError for all but the first 100.
    await asyncio.gather(*(join_and_leave(n) for n in range(1000)))
    await layer.flush()
