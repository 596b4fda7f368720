"""Store-and-forward queue: records wait in a local SQLite database until the server acknowledges them.

Every record gets a sequence number that is never reused (SQLite AUTOINCREMENT) within the queue's
``stream`` (a random id created with the database), so the server can deduplicate a resent batch
by (gateway, stream, seq) as in docs/protocol/uplink.md. Records are deleted only when the server
acknowledges a position at or beyond them, so a crash or a dropped link between send and ack
resends them rather than losing them.

The queue is bounded by ``max_records``. When it is full, the oldest *telemetry* is dropped to make
room: telemetry is periodic and the next sample supersedes it. Logs, alarms, status and events
are never dropped; they are stored beyond the bound, and ``depth()`` shows the overflow.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gridfleet_agent.errors import AgentError


class RecordKind(StrEnum):
    LOG = "log"
    ALARM = "alarm"
    TELEMETRY = "telemetry"
    STATUS = "status"
    EVENT = "event"
    INVENTORY = "inventory"


DROPPABLE_KINDS = frozenset({RecordKind.TELEMETRY})
MAX_PAYLOAD_BYTES = 65_536
"""The server refuses larger payloads (docs/protocol/uplink.md, limits); refusing them here keeps
one oversized record from being resent forever."""


class RecordTooLarge(AgentError, ValueError):
    """A payload is larger than the server accepts; the message says how large it was."""


@dataclass(frozen=True)
class Record:
    seq: int
    kind: RecordKind
    ts: str
    payload: dict[str, Any]

    def as_message(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": str(self.kind), "ts": self.ts, "payload": self.payload}


@dataclass(frozen=True)
class QueueDepth:
    total: int
    by_kind: dict[str, int]
    telemetry_dropped: int
    last_acked_seq: int


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    ts TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS record_kind_seq ON record (kind, seq);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Outbox:
    """The agent's durable outgoing queue (one SQLite file in WAL mode)."""

    def __init__(self, path: Path | str, *, max_records: int = 50_000, durable: bool = True) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.max_records = max_records
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL syncs the WAL on every commit: an alarm accepted into the queue survives a power cut.
        # The simulator passes durable=False, where hundreds of agents share one disk.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('stream', ?)", (f"q-{secrets.token_hex(8)}",)
        )
        (self.stream,) = self._db.execute("SELECT value FROM meta WHERE name = 'stream'").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, kind: RecordKind | str, payload: Mapping[str, Any], *, ts: str | None = None) -> int | None:
        """Queue one record and return its sequence number (None: telemetry refused, queue full)."""
        seqs = self.put_many([(RecordKind(kind), payload, ts or utc_timestamp())])
        return seqs[0] if seqs else None

    def put_many(self, records: Iterable[tuple[RecordKind | str, Mapping[str, Any], str]]) -> list[int]:
        """Queue records in one transaction (one fsync), in order; returns the stored ones' seqs."""
        rows = [
            (str(RecordKind(kind)), ts, json.dumps(payload, separators=(",", ":"))) for kind, payload, ts in records
        ]
        for kind, _, payload in rows:
            if len(payload.encode()) > MAX_PAYLOAD_BYTES:
                raise RecordTooLarge(f"{kind} payload of {len(payload.encode())} bytes exceeds {MAX_PAYLOAD_BYTES}")
        seqs = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for kind, ts, payload in rows:
                    if not self._make_room(droppable_incoming=RecordKind(kind) in DROPPABLE_KINDS):
                        self._bump("telemetry_dropped", 1)
                        continue
                    cursor = self._db.execute(
                        "INSERT INTO record (kind, ts, payload) VALUES (?, ?, ?)", (kind, ts, payload)
                    )
                    seqs.append(int(cursor.lastrowid or 0))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seqs

    def _make_room(self, *, droppable_incoming: bool) -> bool:
        """Drop the oldest telemetry if the queue is full; False if an incoming telemetry must go instead."""
        (count,) = self._db.execute("SELECT COUNT(*) FROM record").fetchone()
        if count < self.max_records:
            return True
        kinds = tuple(str(k) for k in DROPPABLE_KINDS)
        placeholders = ",".join("?" * len(kinds))
        oldest = self._db.execute(
            f"SELECT seq FROM record WHERE kind IN ({placeholders}) ORDER BY seq LIMIT ?",  # noqa: S608  # nosec B608
            (*kinds, count - self.max_records + 1),
        ).fetchall()
        if oldest:
            self._db.executemany("DELETE FROM record WHERE seq = ?", oldest)
            self._bump("telemetry_dropped", len(oldest))
            return True
        # Nothing droppable is queued: keep records that must not be lost, refuse new telemetry.
        return not droppable_incoming

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def pending(self, *, limit: int = 500, after_seq: int = 0) -> list[Record]:
        """The oldest unacknowledged records with ``seq > after_seq``, in sequence order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, ts, payload FROM record WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Record(seq, RecordKind(kind), ts, json.loads(payload)) for seq, kind, ts, payload in rows]

    def ack_through(self, last_seq: int) -> int:
        """The server committed every record up to ``last_seq``: delete them; returns how many."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            deleted = self._db.execute("DELETE FROM record WHERE seq <= ?", (last_seq,)).rowcount
            self._db.execute(
                "INSERT INTO counter (name, value) VALUES ('last_acked_seq', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)",
                (last_seq,),
            )
            self._db.execute("COMMIT")
        return deleted

    def depth(self) -> QueueDepth:
        with self._lock:
            by_kind = dict(self._db.execute("SELECT kind, COUNT(*) FROM record GROUP BY kind").fetchall())
            return QueueDepth(
                total=sum(by_kind.values()),
                by_kind=by_kind,
                telemetry_dropped=self._counter("telemetry_dropped"),
                last_acked_seq=self._counter("last_acked_seq"),
            )
