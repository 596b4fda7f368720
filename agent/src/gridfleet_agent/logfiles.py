"""The agent's own log files, and their upload when the server sends ``upload_logs``.

``run`` writes ``<state_dir>/logs/agent.log`` (rotated at 5 MB, 4 old files kept) besides stderr.
Lines start with a UTC timestamp, so an upload can select a time window; continuation lines
(tracebacks) go with the line they belong to. The selection is gzip'd into a temporary file and
``PUT`` to the server with the gateway's bearer token (docs/protocol/uplink.md, section 2.8).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import logging.handlers
import tempfile
import time
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

import urllib3

from gridfleet_agent import __version__
from gridfleet_agent.errors import AgentError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_FILE_BYTES = 5 * 1024 * 1024
KEPT_FILES = 4


class LogUploadError(AgentError):
    """The logs could not be collected or the server refused them; the message says why."""


def log_dir(state_dir: Path) -> Path:
    return state_dir / "logs"


def configure_console(level: str | int) -> None:
    """Log to stderr (journald under systemd). python-tuf logs every root signature it does not
    need at INFO; only its warnings are worth a gateway's log."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger("tuf").setLevel(logging.WARNING)


def add_file_handler(state_dir: Path, level: int) -> logging.Handler:
    directory = log_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        directory / "agent.log", maxBytes=MAX_FILE_BYTES, backupCount=KEPT_FILES
    )
    formatter = logging.Formatter(LOG_FORMAT, datefmt=TIME_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.setLevel(level)
    logging.getLogger().addHandler(handler)
    return handler


def _oldest_first(path: Path) -> int:
    """agent.log.4 (oldest) ... agent.log.1, then agent.log (current)."""
    suffix = path.name.removeprefix("agent.log").lstrip(".")
    return -int(suffix) if suffix.isdigit() else 0


def _line_time(line: bytes) -> datetime | None:
    try:
        return datetime.strptime(line[:20].decode(), TIME_FORMAT).replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return None


def collect(state_dir: Path, *, since: datetime | None, until: datetime | None, into: IO[bytes]) -> int:
    """Write the log lines of [since, until) gzip'd into ``into``, oldest first; returns the line count."""
    files = sorted(log_dir(state_dir).glob("agent.log*"), key=_oldest_first)
    count = 0
    keep = True
    with gzip.GzipFile(fileobj=into, mode="wb") as out:
        for path in files:
            with path.open("rb") as f:
                for line in f:
                    when = _line_time(line)
                    if when is not None:
                        keep = (since is None or when >= since) and (until is None or when < until)
                    if keep:
                        out.write(line)
                        count += 1
    return count


def upload(
    url: str, state_dir: Path, *, token: str, since: datetime | None, until: datetime | None, ssl_context: Any = None
) -> dict[str, Any]:
    """Collect and PUT the logs; returns the server's answer (``bytes``, ``sha256``) plus ``lines``."""
    with tempfile.TemporaryFile() as gz:
        lines = collect(state_dir, since=since, until=until, into=gz)
        size = gz.tell()
        gz.seek(0)
        digest = hashlib.sha256(gz.read()).hexdigest()
        gz.seek(0)
        pool = urllib3.PoolManager(ssl_context=ssl_context, retries=urllib3.Retry(2, redirect=0))
        try:
            response = pool.request(
                "PUT",
                url,
                body=gz,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/gzip",
                    "Content-Length": str(size),
                    "User-Agent": f"gridfleet-agent/{__version__}",
                },
                timeout=120.0,
            )
        except urllib3.exceptions.HTTPError as e:
            raise LogUploadError(f"cannot reach {url}: {e}") from e
    try:
        answer = json.loads(response.data or b"{}")
    except ValueError:
        answer = {}
    if response.status != HTTPStatus.CREATED:
        raise LogUploadError(f"server refused the upload: HTTP {response.status} {answer.get('error', '')}".strip())
    if answer.get("sha256") not in (None, digest):
        raise LogUploadError("server stored a different file than was sent")
    return {**answer, "lines": lines}
