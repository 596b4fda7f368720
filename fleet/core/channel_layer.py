"""The Redis channel layer with connection settings chosen here rather than left to redis-py's defaults.

Two redis-py 8 defaults break a fleet of long-lived WebSockets on channels-redis
(channels_redis#422, redis-py#4091):

- its socket timeout is 5 s, exactly the layer's blocking wait for the next message
  (`brpop_timeout`), so the wait of every idle consumer ends in `redis.exceptions.TimeoutError`
  and its WebSocket (a gateway uplink, an operator's console) is closed after about 5 s;
- its connection pool refuses the 101st concurrent command with `MaxConnectionsError`, so a burst
  of gateways connecting (the supersede `group_send`, `group_add`) or disconnecting
  (`group_discard`) fails instead of waiting a few milliseconds for a free connection.

`RedisChannelLayer` therefore takes a socket timeout that must exceed the blocking wait, and a
*blocking* pool: beyond `max_connections` a command waits up to `pool_timeout` seconds for a free
connection. fleet/settings.py passes the values (REDIS_SOCKET_TIMEOUT, REDIS_MAX_CONNECTIONS,
REDIS_POOL_TIMEOUT).
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(BaseRedisChannelLayer):
    """channels-redis with a blocking connection pool and a socket timeout longer than its blocking wait.

    Each host is a dict: `address` (a redis:// URL) plus redis-py connection settings and
    `pool_timeout` (how long a command waits for a free pooled connection).
    """

    def __init__(self, hosts: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(hosts=hosts, **kwargs)
        for host in self.hosts:
            timeout = host.get("socket_timeout")
            if timeout is not None and float(timeout) <= self.brpop_timeout:
                raise ImproperlyConfigured(
                    f"The channel layer's Redis socket_timeout ({timeout} s) must exceed its blocking wait of "
                    f"{self.brpop_timeout} s, or every idle WebSocket is closed; set REDIS_SOCKET_TIMEOUT higher."
                )

    def create_pool(self, index: int) -> BlockingConnectionPool:
        host = dict(self.hosts[index])
        address = host.pop("address")
        pool_timeout = host.pop("pool_timeout", None)
        return BlockingConnectionPool.from_url(address, timeout=pool_timeout, **host)
