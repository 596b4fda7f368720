"""Health endpoints for load balancers and orchestration: liveness and readiness."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    cache.set("gridfleet:health", "ok", 5)
    if cache.get("gridfleet:health") != "ok":
        raise RuntimeError("cache did not return what was stored")


def _channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    async_to_sync(layer.group_send)("gridfleet-health", {"type": "health.ping"})


CHECKS = {"database": _database, "cache": _cache, "channel_layer": _channel_layer}


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """200 when the database, cache and channel layer answer; 503 naming what failed otherwise."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure of a dependency makes this instance not ready
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = f"failed: {exc}"
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": results}, status=200 if healthy else 503
    )


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
