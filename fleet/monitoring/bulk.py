"""Multi-row inserts for the high-volume tables, without building a model instance per row.

Django's bulk_create spends most of its time instantiating models and preparing each value; for
telemetry (a dozen rows per record, thousands per batch) that was ~10k rows/s. Here rows are tuples
of database-ready values: COPY on PostgreSQL (PROTOCOL-NOTES: several 100k rows/s), one
executemany INSERT elsewhere. Both run in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model


def db_datetime(value: datetime) -> Any:
    """An aware datetime as the current database stores it."""
    return connection.ops.adapt_datetimefield_value(value)


def db_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def insert_rows(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Identifiers come from the model and its field names, not from input.
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", list(rows))  # noqa: S608  # nosec B608
