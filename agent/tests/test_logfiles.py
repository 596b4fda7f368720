"""Selecting the agent's log lines for an ``upload_logs`` window."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

from gridfleet_agent.logfiles import collect

OLD = (
    "2026-11-26T09:59:59Z INFO gridfleet_agent.uplink: before the window\n"
    "2026-11-26T10:00:00Z ERROR gridfleet_agent.updater: check failed\n"
    "Traceback (most recent call last):\n"
    '  File "updater.py", line 1\n'
)
NEW = (
    "2026-11-26T10:30:00Z INFO gridfleet_agent.uplink: inside\n"
    "2026-11-26T11:00:00Z INFO gridfleet_agent.uplink: after\n"
)


def test_lines_of_the_window_are_collected_oldest_first_with_their_tracebacks(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "agent.log").write_text(NEW)
    (logs / "agent.log.1").write_text(OLD)  # rotated: older, whatever its mtime
    out = io.BytesIO()

    count = collect(
        tmp_path,
        since=datetime(2026, 11, 26, 10, tzinfo=UTC),
        until=datetime(2026, 11, 26, 11, tzinfo=UTC),
        into=out,
    )

    assert gzip.decompress(out.getvalue()).decode().splitlines() == [
        "2026-11-26T10:00:00Z ERROR gridfleet_agent.updater: check failed",
        "Traceback (most recent call last):",
        '  File "updater.py", line 1',
        "2026-11-26T10:30:00Z INFO gridfleet_agent.uplink: inside",
    ]
    assert count == 4


def test_without_a_window_everything_is_collected(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "agent.log").write_text(NEW)
    out = io.BytesIO()
    assert collect(tmp_path, since=None, until=None, into=out) == 2
