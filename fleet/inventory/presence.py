"""Cheap last_seen tracking: remember sightings in memory, write them in a few UPDATEs now and then.

Writing `last_seen` per message was ThingsBoard's bottleneck (PROTOCOL-NOTES), so each ASGI
process keeps the latest sighting per gateway and, at most every FLUSH_INTERVAL, writes them all
with one UPDATE per distinct second (and per CHUNK of gateways). Consumers flush when a frame finds
the interval elapsed, and a gateway's sighting is written at once when it disconnects; the
staleness of `last_seen` in the database is therefore bounded by max(FLUSH_INTERVAL, heartbeat
interval), far below the offline threshold.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from fleet.inventory.models import Gateway

FLUSH_INTERVAL_S = 15.0
CHUNK = 500  # ids per UPDATE, well below SQLite's and PostgreSQL's bound-parameter limits


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
        """Write pending sightings (all, or only those of `gateway_ids`); returns the rows updated."""
        with self._lock:
            if gateway_ids is None:
                pending, self._seen = self._seen, {}
                self._last_flush = time.monotonic()
            else:
                pending = {gid: self._seen.pop(gid) for gid in gateway_ids if gid in self._seen}
        # Sightings grouped by second: one UPDATE per second (and chunk), writing the group's
        # latest sighting, which is at most a second after any of its gateways' own.
        by_second: dict[datetime, list[int]] = defaultdict(list)
        latest_in_second: dict[datetime, datetime] = {}
        for gateway_id, at in pending.items():
            second = at.replace(microsecond=0)
            by_second[second].append(gateway_id)
            latest_in_second[second] = max(at, latest_in_second.get(second, at))
        updated = 0
        for second, ids in by_second.items():
            at = latest_in_second[second]
            for start in range(0, len(ids), CHUNK):
                # Never move last_seen backwards (another process may have written a newer sighting).
                updated += (
                    Gateway.objects.filter(pk__in=ids[start : start + CHUNK])
                    .filter(Q(last_seen__isnull=True) | Q(last_seen__lt=at))
                    .update(last_seen=at)
                )
        return updated


tracker = PresenceTracker()
