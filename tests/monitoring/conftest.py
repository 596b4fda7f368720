"""Monitoring tests: enrolled gateways (PKI fixtures) and a real ASGI server on a loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pki.fixtures import enroll_gateway, enrolled_gateway, pki_ca

__all__ = ["asgi_server", "enroll_gateway", "enrolled_gateway", "pki_ca"]


@pytest.fixture(autouse=True)
def fresh_presence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sightings are per process; one left by an earlier test must not touch this test's gateways
    (database ids are reused between tests)."""
    from fleet.inventory.presence import tracker

    monkeypatch.setattr(tracker, "_seen", {})


@pytest.fixture(autouse=True)
def short_lived_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumers and the live server use the database from their own threads; with persistent
    connections (CONN_MAX_AGE from DATABASE_URL) those would outlive the test and block the
    test database's teardown on PostgreSQL."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def asgi_server(transactional_db: None, settings: Any) -> Iterator[str]:
    """uvicorn serving the full application (HTTP + WebSockets) in a thread, on the test database.

    Like Django's live server: the test and the server share the test database, so factories and
    fixtures set up what the server then serves over real TCP connections.
    """
    import uvicorn
    from channels.layers import channel_layers
    from channels.routing import ProtocolTypeRouter
    from django.core.asgi import get_asgi_application

    from fleet.routing import build_websocket_router

    settings.WHITENOISE_USE_FINDERS = True  # serve static files (htmx) without collectstatic
    # A channel layer receives on one event loop at a time: this server's thread gets fresh layer
    # instances, not those an earlier server's (now stopped) loop was still receiving on.
    channel_layers.backends.clear()
    application = ProtocolTypeRouter({"http": get_asgi_application(), "websocket": build_websocket_router()})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, lifespan="off", log_level="warning", ws_max_size=16 * 2**20))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        channel_layers.backends.clear()
