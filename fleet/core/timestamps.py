"""RFC 3339 timestamps on the wire: always UTC, written with a "Z" (docs/protocol/uplink.md).

The one place the server writes and reads them; the agent keeps its own copy, since it imports
nothing from the server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]


def rfc3339(moment: datetime, *, timespec: Timespec = "auto") -> str:
    """`moment` in UTC as RFC 3339 with a "Z" (2026-11-26T13:00:00Z); refuses a naive datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; the wire carries UTC instants only")
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 timestamp with an offset, as an aware UTC datetime; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("has no UTC offset; use e.g. 2026-11-26T13:00:00Z")
    return parsed.astimezone(UTC)
