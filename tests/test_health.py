from __future__ import annotations

from typing import Any

import pytest

from fleet.core import health

pytestmark = pytest.mark.django_db


def test_ready_when_database_cache_and_channel_layer_answer(client: Any) -> None:
    response = client.get("/healthz/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "channel_layer": "ok"}}
    assert client.get("/healthz/live").json() == {"status": "ok"}


def test_not_ready_names_the_failing_dependency(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ConnectionError("redis refused the connection")

    monkeypatch.setitem(health.CHECKS, "cache", broken)
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"] == "failed: redis refused the connection"
