"""Periodic work in the embedded default, where no Celery beat runs.

The ASGI server runs the very schedule beat would run (settings.CELERY_BEAT_SCHEDULE), calling the
same tasks in a worker thread, so the demo behaves like production: CRLs refresh, rollouts
advance, offline gateways raise alarms. With Redis configured, beat does this and the timer is off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from celery import current_app
from django.conf import settings

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _interval_seconds(schedule: object) -> float:
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if isinstance(schedule, int | float):
        return float(schedule)
    # celery.schedules.schedule and friends expose run_every.
    run_every = getattr(schedule, "run_every", None)
    if isinstance(run_every, timedelta):
        return run_every.total_seconds()
    raise TypeError(f"Unsupported schedule for the in-process scheduler: {schedule!r}")


def run_task_by_name(name: str) -> None:
    try:
        current_app.tasks[name].apply()
    except Exception:
        logger.exception("Scheduled task %s failed", name)


async def _run_every(name: str, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        await sync_to_async(run_task_by_name, thread_sensitive=False)(name)


def with_inprocess_scheduler(app: ASGIApp) -> ASGIApp:
    """Wrap the ASGI app so the lifespan startup starts the periodic loops and shutdown stops them."""
    if not settings.GRIDFLEET_INPROCESS_SCHEDULER:
        return app

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        loops: list[asyncio.Task[None]] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                current_app.loader.import_default_modules()
                for entry in settings.CELERY_BEAT_SCHEDULE.values():
                    seconds = _interval_seconds(entry["schedule"])
                    loops.append(asyncio.create_task(_run_every(str(entry["task"]), seconds)))
                logger.info("In-process scheduler started with %d periodic tasks", len(loops))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for loop in loops:
                    loop.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return wrapped
