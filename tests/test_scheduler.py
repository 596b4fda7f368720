"""In the embedded default the ASGI server itself runs the Celery beat schedule on a timer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from celery import shared_task

from fleet.core.scheduler import with_inprocess_scheduler

runs: list[str] = []


@shared_task(name="tests.scheduler_probe")
def scheduler_probe() -> None:
    runs.append("ran")


async def inner_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("lifespan must not reach the wrapped application")


@pytest.mark.parametrize("enabled", [True, False])
async def test_lifespan_runs_the_beat_schedule_until_shutdown(enabled: bool, settings: Any) -> None:
    settings.GRIDFLEET_INPROCESS_SCHEDULER = enabled
    settings.CELERY_BEAT_SCHEDULE = {"probe": {"task": "tests.scheduler_probe", "schedule": timedelta(seconds=0.05)}}
    runs.clear()
    app = with_inprocess_scheduler(inner_app)
    if not enabled:
        assert app is inner_app
        return
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    sent: list[dict[str, str]] = []

    async def send(message: dict[str, str]) -> None:
        sent.append(message)

    await messages.put({"type": "lifespan.startup"})
    server = asyncio.create_task(app({"type": "lifespan"}, messages.get, send))
    await asyncio.sleep(0.4)
    assert len(runs) >= 2
    await messages.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(server, 2)
    count = len(runs)
    await asyncio.sleep(0.15)
    assert len(runs) == count
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
