"""Cheap last_seen tracking: remember sightings in memory, write them in one UPDATE now and then.

Writing `last_seen` per message was ThingsBoard's bottleneck (PROTOCOL-NOTES), so each ASGI
process keeps the latest sighting per gateway and flushes all of them in a single statement at most
every FLUSH_INTERVAL. Consumers flush when a frame finds the interval elapsed, and a gateway's
sighting is written at once when it disconnects; the staleness of `last_seen` in the database is
therefore bounded by max(FLUSH_INTERVAL, heartbeat interval), far below the offline threshold.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from django.db.models import Case, DateTimeField, Q, Value, When
from django.utils import timezone

from fleet.inventory.models import Gateway

FLUSH_INTERVAL_S = 15.0


class PresenceTracker:
    def __init__(self, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._seen: dict[int, datetime] = {}
        self._lock = threading.Lock()
        self._flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()

    def seen(self, gateway_id: int, at: datetime | None = None) -> None:
        with self._lock:
            self._seen[gateway_id] = at or timezone.now()

    def flush_due(self) -> bool:
        return bool(self._seen) and time.monotonic() - self._last_flush >= self._flush_interval_s

    def flush(self, gateway_ids: set[int] | None = None) -> int:
        """Write pending sightings (all, or only those of `gateway_ids`) in one UPDATE."""
        with self._lock:
            if gateway_ids is None:
                pending, self._seen = self._seen, {}
                self._last_flush = time.monotonic()
            else:
                pending = {gid: self._seen.pop(gid) for gid in gateway_ids if gid in self._seen}
        if not pending:
            return 0
        newest = Case(*[When(pk=gid, then=Value(at)) for gid, at in pending.items()], output_field=DateTimeField())
        # Never move last_seen backwards (another process may have written a newer sighting).
        stale = Q(last_seen__isnull=True) | Q(last_seen__lt=newest)
        return Gateway.objects.filter(pk__in=pending).filter(stale).update(last_seen=newest)


tracker = PresenceTracker()
