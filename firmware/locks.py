"""The single-publisher lock: a PostgreSQL advisory lock, or a file lock on SQLite."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from . import conf

# Arbitrary, fixed: identifies the TUF publisher among the advisory locks of this database.
PUBLISHER_LOCK_ID = 0x47464C54  # "GFLT"


@contextmanager
def publisher_lock() -> Iterator[None]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [PUBLISHER_LOCK_ID])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PUBLISHER_LOCK_ID])
        return
    path = conf.tuf_dir() / "publish.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
